from reasonmed.cli import main

main()
