from devstack_cli.cli import main

main()
