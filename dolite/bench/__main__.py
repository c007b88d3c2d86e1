from dolite.bench.cli import main

main()
