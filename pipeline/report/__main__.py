from pipeline.report.cli import main

main()
