from devstack_cli.entry import main

main()
