from clusterlight.cli import main

main()
