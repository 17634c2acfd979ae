"""benchmarks/workflow_times.py: job seconds read from Snakemake benchmark files and a log."""

from benchmarks.workflow_times import job_times, log_wall_seconds

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def test_job_seconds_per_rule_and_the_logs_wall_time(tmp_path):
    for job, wall, cpu in [("train_cnn/seed0/cnn", 300.5, 580.0), ("train_cnn/seed1/cnn", 10, 9),
                           ("detect/haar/mitcmu", 2.25, "NA")]:
        path = tmp_path / "benchmarks" / f"{job}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(HEADER + f"{wall}\t0:05:00\t1\t1\t1\t1\t1\t1\t1\t{cpu}\n")
    rows = job_times(tmp_path)
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("detect", "detect/haar/mitcmu", 2.25), ("train_cnn", "train_cnn/seed0/cnn", 300.5),
        ("train_cnn", "train_cnn/seed1/cnn", 10.0)]
    assert rows[1][3] == 580.0 and rows[0][3] != rows[0][3]  # NA is not a number
    log = tmp_path / "run.log"
    log.write_text("Building DAG\n[Mon Dec  7 06:48:31 2026]\nrule x:\n"
                   "[Mon Dec  7 08:01:02 2026]\nFinished\n")
    assert log_wall_seconds(log) == 72 * 60 + 31
