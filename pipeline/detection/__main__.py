from pipeline.detection.cli import main

main()
