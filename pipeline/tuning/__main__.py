from pipeline.tuning.cli import main

main()
