from hedged.cli import main

main()
