from temoin.cli import main

main()
