from sipcm.cli import main

main()
