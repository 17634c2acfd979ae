from pipeline.data.cli import main

main()
