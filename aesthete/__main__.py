from aesthete.cli import main

main()
