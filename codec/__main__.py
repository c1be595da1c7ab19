from lqz.cli.main import main

main()
