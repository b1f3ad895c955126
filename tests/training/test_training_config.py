"""keras_seq.training: the one configuration generates the CLI; the learning-rate schedule."""

import dataclasses

import pytest

from keras_seq.cli.tasks import TASKS, _train_parser
from keras_seq.training.config import TrainingConfig, from_arguments
from keras_seq.training.loop import decay_schedule


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_setting_is_a_flag_with_its_default_in_help(task, capsys):
    with pytest.raises(SystemExit):
        _train_parser().parse_args([task, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for f in dataclasses.fields(TASKS[task]):
        if not f.metadata.get("cli", True):
            continue
        assert "--" + f.name.replace("_", "-") in text, f.name
        if f.name not in ("out", "train") and f.default is not None:
            assert f"(default: {f.default})" in text, f.name


def test_flags_round_trip_to_the_config_and_settings_json(tmp_path):
    args = _train_parser().parse_args(["seq2seq", "--train", "t.tsv", "--out", "o", "--no-attention", "--units", "7",
                                       "--target-split", "words", "--dev-examples", "0"])
    config = from_arguments(args, TASKS["seq2seq"])
    assert (config.attention, config.units, config.target_split, config.dev_examples) == (False, 7, "words", 0)
    config.write(tmp_path / "settings.json")
    import json

    assert type(config).from_dict(json.loads((tmp_path / "settings.json").read_text())) == config
    with pytest.raises(ValueError, match="unknown settings"):
        type(config).from_dict({"unit": 3})


@pytest.mark.parametrize("changes, message", [
    ({"epochs": 0}, "epochs must be a positive integer"),
    ({"cell": "tree"}, "unknown cell 'tree': use one of lstm, gru, elman"),
    ({"dropout": 1.0}, "dropout must be in"),
    ({"keep_epochs": -1}, "keep_epochs must be an integer >= 0"),
])
def test_bad_settings_are_named(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainingConfig(**changes)


def test_decay_schedule_suits_short_runs_and_keeps_long_ones():
    assert [decay_schedule(1.0, 2)(e) for e in range(2)] == [1.0, 0.5]  # was [1.0, 0.05]
    short = [decay_schedule(1.0, 5)(e) for e in range(5)]
    assert short == [1.0, 1.0, 0.5, 0.25, 0.125]
    # A 20-epoch run (G2P's default): 8 epochs at the rate, then the same geometric decay to 5% as before.
    long = [decay_schedule(1e-3, 20)(e) for e in range(20)]
    assert long[:8] == [1e-3] * 8 and long[-1] == pytest.approx(5e-5)
    old = [1e-3 * 0.05 ** ((e - 8 + 1) / 12) for e in range(8, 20)]
    assert long[8:] == pytest.approx(old)
