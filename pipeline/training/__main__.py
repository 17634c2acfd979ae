from pipeline.training.cli import main

main()
