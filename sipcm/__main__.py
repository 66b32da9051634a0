from sipcm.cli import console

console()
