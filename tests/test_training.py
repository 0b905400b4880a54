"""Trainer: learning, determinism, failure isolation, augmentation, settings."""
import dataclasses
import json
import math

import pytest
import torch

import alife_nas.training as training
from alife_nas.model import GenomeNet
from alife_nas.training import (
    PRESETS,
    Augmentation,
    Trainer,
    TrainResult,
    TrainSettings,
    make_settings,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny trainings, shared cores


@pytest.fixture(scope="module")
def fast(digits):
    return Trainer(digits, make_settings("fast", max_epochs=2))


def test_learns_digits_well_above_chance(digits):
    epochs = []
    trainer = Trainer(digits, make_settings("fast", max_epochs=4))
    r = trainer.train("16-M", seed=0, evaluate_test=True, on_epoch=lambda e, n, acc: epochs.append((e, n, acc)))
    assert r.failure is None and r.failure_kind is None
    assert r.fitness == r.val_accuracy > 0.5 and not r.at_chance
    assert r.test_accuracy is not None and r.test_accuracy > 0.5
    assert r.epochs == 4 and 1 <= r.best_epoch <= 4 and len(r.history) == 4
    assert max(r.history) == r.fitness and r.history[r.best_epoch - 1] == r.fitness
    assert [e[:2] for e in epochs] == [(1, 4), (2, 4), (3, 4), (4, 4)] and epochs[-1][2] == r.history[-1]
    assert r.params == trainer.describe("16-M").params and r.flops > 0 and r.effective_layers == "16-M"
    assert r.train_time > 0 and r.images_per_sec > 0
    assert json.loads(json.dumps(r.to_dict()))["genome"] == "16-M"


def test_paper_preset_runs_with_early_stopping(digits):
    s = make_settings("paper", max_epochs=6, patience=1)
    r = Trainer(digits, s).train("M", seed=1)  # no conv: improves little, stops early
    assert r.failure is None and 1 <= r.epochs <= 6
    if r.epochs < 6:
        assert r.epochs - r.best_epoch == 1


def test_same_seed_same_result_and_caller_rng_untouched(fast):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = fast.train("16-M", seed=7)
    assert torch.equal(torch.get_rng_state(), before)  # the caller's RNG is neither used nor moved
    torch.rand(5)  # a different global state must not matter
    b = fast.train("16-M", seed=7)
    assert (a.fitness, a.epochs, a.best_epoch, a.history) == (b.fitness, b.epochs, b.best_epoch, b.history)
    c = fast.train("16-M", seed=8)
    assert c.failure is None and c.seed == 8


def test_deterministic_at_default_threads(digits, one_torch_thread):
    torch.set_num_threads(one_torch_thread)
    try:
        trainer = Trainer(digits, make_settings("fast", max_epochs=1))
        a, b = trainer.train("8-M", seed=4), trainer.train("8-M", seed=4)
    finally:
        torch.set_num_threads(1)
    assert a.failure is None and (a.fitness, a.history) == (b.fitness, b.history)


def test_settings_swapped_between_trainings(digits):
    trainer = Trainer(digits, make_settings("paper", max_epochs=1))
    centred = trainer.train_x
    assert abs(float(centred.mean())) < 0.01 and float(centred.std()) < 1  # (x - mean) / 255
    trainer.settings = make_settings("fast", max_epochs=1)
    assert float(trainer.train_x.std()) == pytest.approx(1.0, abs=0.01)  # (x - mean) / std, redone once
    assert trainer.augment == Augmentation(0.125, 0.0, False)
    assert trainer.train("M", seed=0).failure is None


def test_batch_larger_than_train_split(digits):
    r = Trainer(digits, make_settings("fast", max_epochs=2, batch_size=100_000)).train("M", seed=0)
    assert r.failure is None and r.epochs == 2


def test_genome_text_forms_accepted(fast):
    r = fast.train("[('conv', [('nb_filter', 16)]), ('maxp', [('pool_size', 2)])]", seed=0)
    assert r.genome == "16-M" and r.failure is None


# --- failures: each recorded, each followed by a working training --------------------------------
def test_too_large_rejected_before_building(digits, monkeypatch):
    trainer = Trainer(digits, make_settings("fast", max_epochs=1, max_params=20_000, max_layers=5))
    monkeypatch.setattr(training, "build_model", lambda *a, **k: pytest.fail("built a model over the caps"))
    r = trainer.train("16-M", seed=0)
    assert (r.fitness, r.failure_kind, r.epochs) == (0.0, "too_large", 0) and "parameters" in r.failure
    r = trainer.train("M-M-M-M-M-M", seed=0)
    assert r.failure_kind == "too_large" and "layers" in r.failure
    monkeypatch.undo()
    assert trainer.train("M", seed=0).failure is None


def test_too_many_flops_rejected_before_building(digits, monkeypatch):
    trainer = Trainer(digits, make_settings("fast", max_epochs=1, max_flops=400_000))
    monkeypatch.setattr(training, "build_model", lambda *a, **k: pytest.fail("built a model over the caps"))
    r = trainer.train("32", seed=0)  # 2 * (32 * 9 * 64 + 2048 * 512 + 512 * 10) FLOPs
    assert (r.fitness, r.failure_kind, r.epochs) == (0.0, "too_large", 0)
    assert "FLOPs per image" in r.failure and r.failure.endswith("(max_flops)")
    monkeypatch.undo()
    assert trainer.train("M-M", seed=0).failure is None  # 16 values into the head: under the cap


def test_a_run_stored_before_max_flops_reads_as_no_cap_and_keeps_its_settings_hash():
    from alife_nas.config import SearchConfig, settings_hash

    # the hashes of these configs as alife_nas computed them before max_flops existed
    before = {(): ("9bb3363c2d69f8bf", "266d374ca72ab970"),
              (("preset", "paper"), ("max_params", 600000), ("dataset", "cifar10")): ("ce3a5b15b29c1022",
                                                                                     "c3a8bc9d5b0e5b14")}
    for options, (cache, fingerprint) in before.items():
        config = SearchConfig.from_options(**dict(options))
        assert config.training.max_flops == 0
        assert (settings_hash(config.cache_settings()), config.training.fingerprint()) == (cache, fingerprint)
        stored = config.to_dict()
        del stored["training"]["max_flops"]  # as an older version stored it
        old = SearchConfig.from_dict(stored)
        assert old == config and settings_hash(old.cache_settings()) == cache
    capped = SearchConfig.from_options(max_flops=10**6)
    assert SearchConfig.from_dict(capped.to_dict()) == capped and capped.to_dict()["training"]["max_flops"] == 10**6
    assert settings_hash(capped.cache_settings()) != before[()][0]  # a cap changes what a training gives
    assert TrainSettings.from_dict({}).max_flops == 0


def test_out_of_memory_recorded_then_next_works(fast, monkeypatch):
    def oom(self, x):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(GenomeNet, "forward", oom)
    r = fast.train("16-M", seed=0)
    assert (r.fitness, r.failure_kind) == (0.0, "oom") and "out of memory" in r.failure
    monkeypatch.setattr(GenomeNet, "forward", lambda self, x: (_ for _ in ()).throw(RuntimeError("DefaultCPUAllocator: can't allocate memory")))
    assert fast.train("16-M", seed=0).failure_kind == "oom"
    monkeypatch.undo()
    ok = fast.train("16-M", seed=0)
    assert ok.failure is None and ok.fitness > 0.3


def test_nonfinite_loss_recorded_then_next_works(digits):
    s = make_settings("paper", lr=1e12, max_epochs=3, patience=0)
    trainer = Trainer(digits, s)
    r = trainer.train("32-32-M", seed=0)
    assert (r.fitness, r.failure_kind, r.test_accuracy) == (0.0, "nonfinite", None)
    assert "nan" in r.failure.lower() or "inf" in r.failure.lower() or "non-finite" in r.failure
    trainer.settings = dataclasses.replace(s, lr=0.01)  # the same trainer goes on working
    assert trainer.train("16-M", seed=0).failure is None


def test_nonfinite_from_the_model_itself(fast, monkeypatch):
    real = GenomeNet.forward
    monkeypatch.setattr(GenomeNet, "forward", lambda self, x: real(self, x) * float("nan"))
    r = fast.train("16-M", seed=0)
    assert r.failure_kind == "nonfinite" and r.epochs == 0


def test_any_error_recorded_then_next_works(fast, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("something odd in the builder")

    monkeypatch.setattr(training, "build_model", broken)
    r = fast.train("16-M", seed=0)
    assert (r.fitness, r.failure_kind) == (0.0, "error") and r.failure == "ValueError: something odd in the builder"
    monkeypatch.undo()
    assert fast.train("16-M", seed=0).failure is None


def test_at_chance_flag(fast, monkeypatch):
    monkeypatch.setattr(Trainer, "evaluate", lambda self, model, x, y: 0.11)
    r = fast.train("M", seed=0)
    assert r.failure is None and r.fitness == 0.11 and r.at_chance


# --- augmentation --------------------------------------------------------------------------------
@pytest.mark.parametrize("aug", [Augmentation(0.125, 0.0, False), Augmentation(0.1, 10.0, False),
                                 Augmentation(0.0, 0.0, True), Augmentation(0.1, 0.0, True)])
def test_augmentation_keeps_shape_and_dtype_and_changes_images(aug):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 10, 12)
    out = aug(x, gen)
    assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()
    assert not torch.equal(out, x)
    again = aug(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)  # a pure function of the generator's state


def test_integer_shift_moves_whole_pixels():
    x = torch.arange(64.0).view(1, 1, 8, 8).repeat(32, 2, 1, 1)
    out = Augmentation(0.125, 0.0, False)(x, torch.Generator().manual_seed(1))  # up to 1 pixel
    assert set(out.unique().tolist()) <= set(x.unique().tolist())  # values moved, never blended
    diffs = {(out[i, 0] - x[i, 0])[2:6, 2:6].unique().tolist()[0] for i in range(32)}  # interior
    assert diffs <= {dy * 8 + dx for dy in (-1, 0, 1) for dx in (-1, 0, 1)} and len(diffs) > 1
    assert torch.equal(out[:, 0], out[:, 1])  # channels move together
    const = torch.full((4, 1, 8, 8), 3.0)
    for aug in (Augmentation(0.125, 0.0, True), Augmentation(0.125, 10.0, True)):  # border fill, no black edges
        assert torch.allclose(aug(const, torch.Generator()), const)


def test_flip_auto_by_dataset():
    s = make_settings("fast")
    assert s.aug_flip is None
    assert Augmentation.from_settings(s, "cifar10").flip and not Augmentation.from_settings(s, "digits").flip
    assert Augmentation.from_settings(s, "imagefolder:/x").flip
    assert not Augmentation.from_settings(make_settings("paper"), "cifar10").flip


# --- settings --------------------------------------------------------------------------------------
def test_paper_preset_is_the_spec():
    p = PRESETS["paper"]
    assert (p.optimizer, p.lr, p.momentum, p.nesterov, p.lr_schedule, p.lr_decay) == ("sgd", 0.01, 0.9, True, "time_decay", 1e-6)
    assert (p.max_epochs, p.patience, p.hidden) == (100, 10, 512)
    assert p.aug_rotation > 0 and p.aug_shift > 0 and p.l2 > 0 and p.normalize == "center"
    f = PRESETS["fast"]
    assert f.preset == "fast" and f.patience == 0 and f.max_epochs < 20 and f.lr_schedule == "onecycle"


def test_settings_round_trip_and_overrides():
    s = make_settings("fast", max_epochs=2, batch_size=64, aug_flip=True)
    d = s.to_dict()
    assert TrainSettings.from_dict(json.loads(json.dumps(d))) == s
    assert s.fingerprint() == TrainSettings.from_dict(d).fingerprint() != make_settings("fast").fingerprint()
    # a run stored before a knob existed trained as the paper preset did then: no memory cap
    assert TrainSettings.from_dict({}) == dataclasses.replace(PRESETS["paper"], max_memory=0.0)
    with pytest.raises(ValueError, match="learning_rate"):
        make_settings("paper", learning_rate=0.1)
    with pytest.raises(ValueError, match="bogus"):
        TrainSettings.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="preset"):
        make_settings("slow")
    for bad in ({"batch_size": 0}, {"lr": -1.0}, {"optimizer": "rmsprop"}, {"lr": float("nan")}, {"patience": 1.5}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            make_settings("paper", **bad)


def test_lr_schedules():
    paper = training._schedule(PRESETS["paper"], 1000)
    assert paper(0) == 0.01 and paper(10**6) == pytest.approx(0.005)  # Keras: lr / (1 + 1e-6 t)
    s = make_settings("fast", lr=1.0, warmup_frac=0.25, lr_start_frac=0.1, lr_end_frac=0.0)
    one = training._schedule(s, 100)
    assert one(0) == pytest.approx(0.1) and one(25) == pytest.approx(1.0) and one(100) == pytest.approx(0.0)
    assert all(one(t) <= one(t + 1) for t in range(25)) and all(one(t) >= one(t + 1) for t in range(25, 100))
    assert training._schedule(make_settings("paper", lr_schedule="constant"), 10)(99) == 0.01


def test_result_to_dict_has_every_field():
    r = TrainResult("16-M", 0.0, 0.0, None, 0, 0, 0.0, 0.0, 1, 2, "16-M", "x", "error")
    assert set(r.to_dict()) >= {"genome", "fitness", "val_accuracy", "test_accuracy", "best_epoch", "epochs", "train_time",
                                "images_per_sec", "params", "flops", "effective_layers", "failure", "failure_kind", "at_chance"}
    assert not math.isnan(r.to_dict()["fitness"])


def test_the_resident_dtype_follows_amp_and_cannot_overflow():
    # bf16 only where bf16 autocast runs (CUDA with amp): a model without autocast gets fp32 input
    assert training.resident_dtype("cuda", True) == torch.bfloat16
    assert training.resident_dtype("cuda", False) == torch.float32
    assert training.resident_dtype("cpu", True) == training.resident_dtype("cpu", False) == torch.float32
    # a near-constant channel standardised by the 1e-3 std floor: 255 / 1e-3 overflows fp16, not bf16
    x = torch.full((1, 1, 2, 2), 255.0)
    assert not torch.isfinite((x / 1e-3).to(torch.float16)).all()
    assert torch.isfinite((x / 1e-3).to(torch.bfloat16)).all()


def test_bf16_resident_data_with_bf16_autocast_trains_on_cpu(digits, monkeypatch):
    """The CUDA amp path (bf16 resident data, bf16 autocast), exercised on CPU where torch allows it."""
    monkeypatch.setattr(training, "resident_dtype", lambda device_type, amp: torch.bfloat16 if amp else torch.float32)
    trainer = Trainer(digits, make_settings("fast", max_epochs=2, aug_rotation=5.0))
    assert trainer.train_x.dtype == torch.bfloat16
    trainer.amp = True  # CPU autocast in bf16, as CUDA's
    result = trainer.train("16-M", seed=0)
    assert result.failure is None and result.fitness > 0.5
    trainer.settings = make_settings("fast", max_epochs=2, amp=False)  # amp off: the data is redone in fp32
    assert trainer.train_x.dtype == torch.float32 and not trainer.amp
    assert trainer.train("16-M", seed=0).failure is None
