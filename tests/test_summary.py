import json

from cnn_denoise import summary


def test_prints_the_two_deliverables(tmp_path, capsys):
    path = tmp_path / "eval.json"
    path.write_text(
        json.dumps(
            {
                "train": {"l1": 2.5e-4, "l1_sum": 8.0},
                "test": {"l1": 2.4e-4, "l1_sum": 7.68},
                "linear": {"l1_sum": 0.0179, "si_sdr_db": 43.7},
            }
        )
    )
    assert summary.main(str(path)) == 0
    out = capsys.readouterr().out
    assert "train L1 = 2.5000e-04, test L1 = 2.4000e-04" in out and "train 8.0000, test 7.6800" in out
    assert "test L1 per recording 0.0179, SI-SDR 43.70 dB" in out
