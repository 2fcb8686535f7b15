from socle.cli import main

main()
