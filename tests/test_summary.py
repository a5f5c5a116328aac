import json

from cnn_denoise.views import summary

MEASURES = {
    "test": {"l1": 2.54e-4, "si_sdr_db": -14.72, "stoi": 0.907},
    "baselines": {
        "zeros": {"l1": 1.0e-4, "si_sdr_db": None, "stoi": None},
        "noisy": {"l1": 1.38e-4, "si_sdr_db": -4.57, "stoi": 0.935},
        "linear": {"l1": 5.6e-7, "si_sdr_db": 43.73, "stoi": 0.995},
        "lowpass": {"l1": 8.5e-8, "si_sdr_db": 54.97, "stoi": 0.955},
    },
}


def test_prints_the_deliverables_every_baseline_with_its_meaning_and_a_plain_verdict(tmp_path, capsys):
    path, measures = tmp_path / "eval.json", tmp_path / "measures.json"
    path.write_text(json.dumps({"train": {"l1": 2.5e-4, "l1_sum": 8.0}, "test": {"l1": 2.4e-4, "l1_sum": 7.68}}))
    measures.write_text(json.dumps(MEASURES))
    assert summary.main(str(path), str(measures)) == 0
    out = capsys.readouterr().out
    assert "train L1 = 2.5000e-04, test L1 = 2.4000e-04" in out and "train 8.0000, test 7.6800" in out
    lines = out.splitlines()
    low = next(line for line in lines if line.startswith("ideal low-pass"))
    assert "54.97" in low and "upper reference, not a competitor" in low
    assert "bar to beat" in next(line for line in lines if line.startswith("least-squares filter"))
    assert "worse than the noisy input (SI-SDR -14.7 dB vs -4.6 dB)" in lines[-2] and "make recipe" in lines[-1]
    assert lines[-3] == summary.MEANING and "how close the output is to the clean speech" in lines[-3]
    assert "DNSMOS (enhance --score): how clean it sounds, no reference" in lines[-3]
    assert max(map(len, lines)) <= 160


def test_no_verdict_when_the_cnn_beats_its_input():
    better = {**MEASURES, "test": {"l1": 1e-6, "si_sdr_db": 30.0, "stoi": 0.99}}
    assert summary.verdict(better) is None
