"""Every option of every group composes and instantiates; bad keys and types fail before any work starts."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf.errors import ConfigKeyError, ValidationError

from facenet.models.build import build_network
from tests.conftest import CONF

GROUPS = [
    "backbone",
    "head",
    "batch",
    "dataset",
    "eval",
    "miner",
    "loss",
    "optimizer",
    "lr_schedule",
    "hardware",
    "tracking",
]
REQUIRED = {
    "dataset=folder": ["dataset.root=/x"],
    "dataset=recordio": ["dataset.path=/x"],
    "eval=lfw": ["eval.root=/x", "eval.pairs=/x/pairs.txt"],
    "eval=bin": ["eval.path=/x/lfw.bin"],
    "eval=benchmarks": ["eval.dir=/x"],
    "eval=openset": ["eval.root=/x"],
    "eval=ijb": ["eval.root=/x"],
}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("group", GROUPS)
def test_every_option_composes_and_instantiates(compose_cfg, group):
    import mindspore as ms
    import numpy as np

    from facenet.training.setup import build_loss, build_step

    assert options(group), f"conf/{group} is empty"
    for option in options(group):
        override = f"{group}={option}"
        cfg = compose_cfg(override, *REQUIRED.get(override, []))
        node = cfg[group]
        if group == "hardware":
            assert node.mode in ("GRAPH", "PYNATIVE") and node.device in ("CPU", "GPU", "Ascend")
            continue
        obj = instantiate(node) if group != "loss" else build_loss(cfg, num_classes=5)
        if group == "backbone":  # forward shapes at each backbone's own input size: tests/test_models.py
            assert obj.out_channels > 0 and min(obj.feature_size(224)) >= 1
        elif group == "optimizer":
            net = build_network(cfg.backbone, cfg.head, cfg.preprocess.image_size)
            step, lr = build_step(cfg, net, steps_per_epoch=3)
            assert isinstance(step.optimizer, ms.nn.Optimizer) and isinstance(step.optimizer, obj.func)
            assert lr.shape == (3 * cfg.epochs,)
        elif group == "batch":
            import pandas as pd

            table = pd.DataFrame({"id": [str(i) for i in range(80)], "name": [f"n{i // 4}" for i in range(80)]})
            table["class"] = np.arange(80) // 4
            sampler = obj(table, steps_per_epoch=3, seed=0)
            assert sampler.epoch_indices(1).shape == (3 * sampler.batch_size,)
        elif group == "lr_schedule":
            lr = obj(epochs=2, steps_per_epoch=3)
            assert lr.shape == (6,) and lr.max() == pytest.approx(cfg.lr)
        elif override == "miner=none":
            assert obj is None  # what a classification loss selects
        else:
            assert obj is not None


def test_top_level_knobs_reach_groups(compose_cfg):
    cfg = compose_cfg("optimizer=sgd", "lr=0.004", "margin=0.3", "miner=batch_hard", "embedding_size=64")
    assert cfg.lr_schedule.base_lr == 0.004 and cfg.loss.margin == 0.3 and cfg.head.embedding_size == 64
    assert cfg.miner._target_.endswith("BatchHardMiner") and cfg.optimizer._target_ == "mindspore.nn.SGD"


def test_experiment_overrides_defaults(compose_cfg):
    cfg = compose_cfg("experiment=smoke")
    assert cfg.epochs == 1 and cfg.batch.identities == 16 and cfg.train.steps_per_epoch == 3


@pytest.mark.parametrize(
    "override,error",
    [
        ("lrr=0.1", ConfigCompositionException),
        ("backbone.blocks=[1,1,1,1]", ConfigCompositionException),
        ("optimizer.momentum=0.9", ConfigCompositionException),  # adam has no momentum
        ("epochs=ten", ConfigCompositionException),
        ("batch.identities=1.5", ConfigCompositionException),
        ("miner=batch_hardest", ConfigCompositionException),
    ],
)
def test_bad_overrides_fail_clearly(compose_cfg, override, error):
    with pytest.raises(error) as info:
        compose_cfg(override)
    message = str(info.value) + str(info.value.__cause__ or "")
    key = override.split("=")[0].split(".")[-1]
    assert key in message or "ten" in message or "1.5" in message


def test_yaml_unknown_key_rejected(tmp_path):
    """A group option that sets a key its schema lacks is rejected (no key is accepted and ignored)."""
    import shutil

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from facenet.config.schema import register

    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    (conf / "miner" / "typo.yaml").write_text(
        "defaults:\n  - typo_schema\n_target_: facenet.mining.BatchAllMiner\nmargn: 0.3\n"
    )
    register(conf)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        with pytest.raises((ConfigCompositionException, ConfigKeyError, ValidationError)) as info:
            compose(config_name="config", overrides=["miner=typo"])
    assert "margn" in str(info.value) + str(info.value.__cause__)


EXPERIMENT_REQUIRED = {
    "seed_vggface2": ["dataset.root=/x", "eval.root=/x", "eval.pairs=/x/pairs.txt"],
    # ckpt=null: the published weights are converted in tests/test_pretrained.py (slow)
    "finetune": [
        "dataset.root=/x",
        "eval.root=/x",
        "eval.pairs=/x/p.txt",
        "also_eval.lfw.root=/x",
        "also_eval.lfw.pairs=/x/p.txt",
        "ckpt=null",
    ],
}


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF / "experiment").glob("*.yaml")))
def test_every_experiment_composes_and_builds(compose_cfg, name):
    """Model and compiled step of every experiment (of each stage of a two-stage one; its data is the user's:
    building it is the e2e tests' job)."""
    from facenet.tasks.two_stage import stage_configs
    from facenet.training.setup import build_loss, build_model, build_step

    cfg = compose_cfg(f"experiment={name}", *EXPERIMENT_REQUIRED.get(name, []))
    for stage in stage_configs(cfg) if cfg.task == "two_stage" else [cfg]:
        step, lr = build_step(stage, build_model(stage), 2, build_loss(stage, num_classes=5))
        assert lr.shape == (2 * stage.epochs,) and getattr(step.loss, "margin", stage.margin) == stage.margin
        assert callable(instantiate(stage.batch))


def test_seed_experiment_is_the_reference_recipe(compose_cfg):
    cfg = compose_cfg("experiment=seed_vggface2", *EXPERIMENT_REQUIRED["seed_vggface2"])
    assert cfg.backbone.block == "bottleneck" and list(cfg.backbone.layers) == [3, 4, 6, 3]
    assert cfg.preprocess.image_size == 224 and cfg.head.pool == "flatten" and cfg.head.scale == 10.0
    assert cfg.init_std == 0.01 and cfg.embedding_size == 128
    assert cfg.loss.margin == 0.5 and cfg.loss.squared is False and cfg.loss.reduction == "active_mean"
    assert cfg.optimizer._target_ == "mindspore.nn.Adam" and cfg.lr_schedule.base_lr == 0.004
    assert cfg.lr_schedule._target_.endswith(".constant") and cfg.epochs == 600
    assert cfg.batch.triplets == 64 and cfg.miner._target_.endswith("RandomTripletsMiner")
    assert cfg.augment.random_interpolation and cfg.augment.hflip and cfg.train.keep_checkpoint_max == 10


def test_facenet_paper_experiment(compose_cfg):
    cfg = compose_cfg("experiment=facenet_paper")
    assert cfg.miner._target_.endswith("SemiHardMiner") and cfg.loss.squared is True and cfg.loss.margin == 0.2
    assert cfg.embedding_size == 128 and cfg.preprocess.image_size == 160


def test_finetune_experiment_builds_the_published_network_and_feeds_it_as_trained(compose_cfg):
    """What experiment=finetune composes is what pretrained:casia-webface's sidecar describes (else the warm start
    would not fit, or would be fed otherwise than the model was trained)."""
    from omegaconf import OmegaConf

    from facenet.models.pretrained import lookup

    cfg = compose_cfg("experiment=finetune", *EXPERIMENT_REQUIRED["finetune"][:-1])
    entry = lookup(cfg.ckpt)
    model = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("backbone", "head")}
    assert model == entry.model and cfg.embedding_size == entry.embedding_size
    preprocess = OmegaConf.to_container(cfg.preprocess, resolve=True)
    assert {k: preprocess[k] for k in ("image_size", "normalize", "align")} == {
        k: entry.preprocess[k] for k in ("image_size", "normalize", "align")
    }
    assert cfg.train.eval_at_start and cfg.finetune.bn == "frozen" and "lfw" in cfg.also_eval


# ---------------------------------------------------------------- one source for every value
WIRING = ("_target_", "_partial_")


def _option_yaml(group: str, option: str) -> tuple[str, dict]:
    """(the schema an option starts from, its values as written): the option's YAML over that of an option of its
    group it extends (its first default, if not `<option>_schema`), with a group inside it (miner.memory) merged."""
    from omegaconf import OmegaConf

    raw = OmegaConf.to_container(OmegaConf.load(CONF / group / f"{option}.yaml"))
    defaults = raw.pop("defaults")
    schema, base = (defaults[0], {}) if defaults[0] == f"{option}_schema" else _option_yaml(group, defaults[0])
    for nested in (d for d in defaults if isinstance(d, dict)):
        for key, choice in ((k, c) for k, c in nested.items() if (CONF / group / k).is_dir()):
            raw[key] = OmegaConf.merge(OmegaConf.load(CONF / group / key / f"{choice}.yaml"), raw.get(key, {}))
    return schema, OmegaConf.to_container(OmegaConf.merge(base, raw))


def _schema_literals(schema) -> dict[str, object]:
    """A schema's fields that carry a value of their own: anything but MISSING, wiring keys and interpolations."""
    import dataclasses

    from omegaconf import MISSING

    out = {}
    for f in dataclasses.fields(schema):
        value = f.default if f.default is not dataclasses.MISSING else None
        if f.default_factory is not dataclasses.MISSING:
            continue  # nested sections (train, preprocess, ...): their own schemas are checked
        if f.name in WIRING or value == MISSING or (isinstance(value, str) and value.startswith("${")):
            continue
        out[f.name] = value
    return out


def test_schemas_carry_types_not_values():
    """Every value lives in conf/: a schema default beside it would be a second value, free to drift. Checked for
    every option's schema, derived or written, and every hand-written section."""
    import dataclasses
    import inspect

    from facenet.config import schema as module
    from facenet.config.schema import schemas

    written = [c for _, c in inspect.getmembers(module, dataclasses.is_dataclass) if c.__module__ == module.__name__]
    found = [s for nodes in schemas().values() for s in nodes.values()] + written
    assert len(written) >= 15 and {s.__name__: _schema_literals(s) for s in found if _schema_literals(s)} == {}


def test_schema_defaults_equal_the_yaml_values():
    """Where a schema does give a value (wiring: `_target_`), every option that also writes it agrees."""
    from facenet.config.schema import schemas

    stored = schemas()
    differ = []
    for group in GROUPS:
        for option in options(group):
            name, raw = _option_yaml(group, option)
            defaults = {f: getattr(stored[group][name], f, None) for f in raw}
            differ += [
                f"{group}/{option}: {k}={v!r}, schema {defaults[k]!r}"
                for k, v in raw.items()
                if defaults[k] is not None and not str(defaults[k]).startswith(("${", "???")) and defaults[k] != v
            ]
    assert differ == []


THROWAWAY = """
from __future__ import annotations


class Base:
    def __init__(self, names: list[str], note: str | None, margin: float):
        self.names, self.note, self.margin = names, note, margin


class ThrowawayLoss(Base):
    def __init__(self, miner: object, num_classes: int, scale: float, sizes: tuple[int, ...], **kw):
        super().__init__(**kw)
        self.miner, self.num_classes, self.scale, self.sizes = miner, num_classes, scale, sizes
"""


def test_one_class_plus_one_yaml(tmp_path, monkeypatch):
    """A new loss option is a class and a YAML file, nothing else: its schema comes from the class's signature
    (through **kw into its base; types, MISSING values, the run's arguments left out, `margin` tied to the
    top-level knob), and the option composes, builds, and refuses a misspelt or wrongly typed key."""
    import dataclasses
    import shutil

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import MISSING

    from facenet.config import derive
    from facenet.config.schema import SUPPLIED, TIES, register

    (tmp_path / "throwaway_loss.py").write_text(THROWAWAY)
    monkeypatch.syspath_prepend(str(tmp_path))
    schema = derive.schema("throwaway_loss.ThrowawayLoss", SUPPLIED["loss"], TIES)
    assert schema.__name__ == "ThrowawayLossConf"
    assert {f.name: (f.type, f.default) for f in dataclasses.fields(schema)} == {
        "_target_": (str, "throwaway_loss.ThrowawayLoss"),
        "_partial_": (bool, True),
        "scale": (float, MISSING),
        "sizes": (list[int], MISSING),
        "names": (list[str], MISSING),
        "note": (str | None, MISSING),
        "margin": (float, "${margin}"),
    }

    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    (conf / "loss" / "throwaway.yaml").write_text(
        "defaults:\n  - throwaway_schema\n_target_: throwaway_loss.ThrowawayLoss\n"
        "scale: 2.0\nsizes: [1, 2]\nnames: [a]\nnote: null\n"
    )
    register(conf)

    def composed(*overrides: str):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
            return compose(config_name="config", overrides=["loss=throwaway", *overrides])

    loss = instantiate(composed("margin=0.3").loss)(miner="the run's miner", num_classes=3)
    assert (loss.scale, list(loss.sizes), list(loss.names), loss.note, loss.margin) == (2.0, [1, 2], ["a"], None, 0.3)
    assert (loss.miner, loss.num_classes) == ("the run's miner", 3)
    for bad in ("loss.scal=1", "loss.scale=big", "loss.sizes=[x]", "loss.num_classes=5"):
        with pytest.raises(ConfigCompositionException) as info:
            composed(bad)
        assert bad.split("=")[0].split(".")[1] in str(info.value) + str(info.value.__cause__), bad


def test_every_option_schema_lists_its_callables_config_parameters():
    """Each group option starts from `<option>_schema` (or extends another option of its group); a derived schema
    has a field for exactly the parameters of its `_target_` that the run does not supply, which are the keys the
    option's YAML sets (values live there) but for ties to a top-level knob. Built partial exactly when the run
    supplies arguments; every run-supplied name is a parameter some option of its group takes."""
    import dataclasses

    from hydra.utils import get_object

    from facenet.config.derive import Derived, parameters
    from facenet.config.schema import SUPPLIED, TIES, schemas

    stored, taken, differ = schemas(), {}, []
    for group in GROUPS:
        for option in options(group):
            name, raw = _option_yaml(group, option)
            schema = stored[group][name]
            if not isinstance(schema, Derived):
                continue
            params = set(parameters(get_object(raw["_target_"])))
            supplied = params & set(SUPPLIED.get(group, ()))
            taken.setdefault(group, set()).update(supplied)
            fields = {f.name for f in dataclasses.fields(schema)} - set(WIRING)
            keys = set(raw) - {"_target_"}
            if not fields == params - supplied == keys | (fields & set(TIES)):
                differ.append(f"{group}/{option}: {sorted(fields)} / {sorted(params)} / YAML {sorted(keys)}")
            assert ("_partial_" in {f.name for f in dataclasses.fields(schema)}) == (group in SUPPLIED), option
    assert differ == []
    assert {group: set(names) for group, names in SUPPLIED.items()} == {group: taken[group] for group in SUPPLIED}


def test_a_composed_config_pickles_with_its_schemas(compose_cfg):
    """Derived schemas live in no module: a composed config (a parallel sweep's job is pickled) still pickles,
    and unpickled it still refuses a wrongly typed value."""
    import pickle

    from omegaconf.errors import ValidationError as Invalid

    cfg = pickle.loads(pickle.dumps(compose_cfg("loss=arcface")))
    assert cfg.loss.m == 0.5 and type(cfg.loss._metadata.object_type).__name__ == "Derived"
    with pytest.raises(Invalid):
        cfg.loss.m = "big"


def _class_defaults(target: str) -> dict[str, object]:
    """Keyword defaults of a facenet class (its __init__ and its bases') or function."""
    import importlib
    import inspect

    module, _, name = target.rpartition(".")
    obj = getattr(importlib.import_module(module), name)
    out: dict[str, object] = {}
    for fn in [c.__init__ for c in obj.__mro__] if inspect.isclass(obj) else [obj]:
        try:
            params = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):
            continue
        for p in params:
            if p.default is not inspect.Parameter.empty:
                out.setdefault(p.name, p.default)
    return out


def _option_values() -> dict[str, dict]:
    """{"group/option": its resolved values} for every group option, read as Hydra composes it: the schema, the
    YAML over it, interpolations resolved against the primary config (composing each through Hydra takes 10 s)."""
    from omegaconf import OmegaConf

    from facenet.config.schema import schemas

    stored = schemas()
    top = OmegaConf.load(CONF / "config.yaml")
    top = OmegaConf.create({k: v for k, v in top.items() if k not in ("defaults", "hydra")})
    out = {}
    for group in GROUPS:
        for option in options(group):
            name, raw = _option_yaml(group, option)
            node = OmegaConf.merge(OmegaConf.structured(stored[group][name]), raw)
            root = OmegaConf.merge(top, {"_option": node})
            out[f"{group}/{option}"] = OmegaConf.to_container(root._option, resolve=True)
    return out


def test_library_defaults_agree_with_the_config():
    """A facenet class's keyword default is never a second, different value for what every option of the config
    sets to one value: a reader of the class would take it for the value runs use."""
    from omegaconf import OmegaConf

    values: dict[tuple[str, str], set] = {}
    for node in _option_values().values():
        if str(node.get("_target_", "")).startswith("facenet."):
            for key, value in node.items():
                if key not in WIRING and not isinstance(value, dict):  # a nested node: its own settings, below
                    values.setdefault((node["_target_"], key), set()).add(repr(value))
    for key, value in OmegaConf.to_container(OmegaConf.load(CONF / "config.yaml").augment).items():
        values[("facenet.data.images.TrainTransform", key)] = {repr(value)}
    differ = []
    for (target, key), seen in sorted(values.items()):
        default = _class_defaults(target).get(key, "<none>")
        if default != "<none>" and len(seen) == 1:
            value = next(iter(seen))
            if repr(list(default) if isinstance(default, tuple) else default) != value:
                differ.append(f"{target}({key}={default!r}) but the config says {value}")
    assert differ == []


def test_option_values_read_as_hydra_composes_them(compose_cfg):
    """The shortcut above agrees with Hydra on a few options."""
    from omegaconf import OmegaConf

    values = _option_values()
    for group, option in [("loss", "triplet"), ("head", "reference"), ("eval", "synthetic"), ("optimizer", "sgd")]:
        composed = OmegaConf.to_container(compose_cfg(f"{group}={option}", with_dirs=False)[group], resolve=True)
        assert values[f"{group}/{option}"] == composed, (group, option)
