"""The offline pipelines (bc_offline, td3bc_offline, iql_offline, cql_offline) on a small
Pendulum dataset written here: they train their updates, evaluate at the points, write their
files and log their losses; a resumed run makes the same updates; bad datasets and resumes
end with an error line before any work."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest
import torch

from streamrl.cli import load_pipeline

pytest.importorskip("minari")

ROOT = Path(__file__).resolve().parents[2]
PIPELINES = {name: load_pipeline(ROOT / "pipelines" / f"{name}.py")
             for name in ("bc_offline", "td3bc_offline", "iql_offline", "cql_offline")}
LOSSES = {"bc_offline": ["loss_bc"], "td3bc_offline": ["loss_actor", "loss_qvalue", "lmbd"],
          "iql_offline": ["loss_actor", "loss_qvalue", "loss_value"],
          "cql_offline": ["loss_actor", "loss_qvalue", "loss_cql", "loss_alpha",
                          "loss_actor_bc"]}
DATASET = "minari:pendulum/random-v0"


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """A Minari dataset of 8 random Pendulum episodes (1,600 steps), in a root of its own."""
    from streamrl.collectors import Collector
    from streamrl.data.datasets import write_minari_dataset
    from streamrl.envs import GymEnv

    root = tmp_path_factory.mktemp("datasets")
    mp = pytest.MonkeyPatch()
    mp.setenv("MINARI_DATASETS_PATH", str(root / "minari"))
    mp.setenv("STREAMRL_DATASETS_ROOT", str(root / "cache"))
    torch.manual_seed(0)
    collector = Collector(GymEnv("Pendulum-v1"), None, frames_per_batch=1600,
                          total_frames=1600)
    batch = next(iter(collector))
    collector.shutdown()
    write_minari_dataset(batch, "pendulum/random-v0", env="Pendulum-v1")
    yield root
    mp.undo()


def _config(name, **overrides):
    cls = next(v for k, v in vars(PIPELINES[name]).items()
               if k.endswith("Config") and k != "OfflineConfig")
    options = dict(dataset=DATASET, updates=40, batch_size=32, minibatches_per_sample=4,
                   eval_interval=20, eval_episodes=2, hidden=16, logger="csv")
    return cls(**{**options, **overrides})


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_a_pipeline_trains_evaluates_and_writes_its_files(datasets, name, tmp_path):
    result = PIPELINES[name].train(_config(name), run_dir=tmp_path)
    assert result.updates == 40
    assert [u for u, _ in result.evaluations] == [20, 40]
    assert all(r < 0 for _, r in result.evaluations)  # Pendulum's returns
    for f in ("config.json", "checkpoint.pt", "metrics.csv"):
        assert (tmp_path / f).is_file(), f
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    for key in LOSSES[name]:
        values = [r[key] for r in rows if r.get(key)]
        assert values and all(v not in ("nan", "inf") for v in values), (key, rows[:2])
    assert [r["updates"] for r in rows if r.get("eval_return")] == ["20", "40"]


def test_the_env_comes_from_the_dataset(datasets):
    config = _config("bc_offline")
    assert config.env_name is None
    config.load_dataset().close()
    assert config.env_name == "Pendulum-v1"


def test_a_dataset_of_float64_observations_trains_float32_networks(datasets, tmp_path):
    # MuJoCo envs give float64 observations, as minari stores them; the pipelines' env casts
    # them to float32 (DoubleToFloat), and the dataset's rows are read the same way
    if importlib.util.find_spec("mujoco") is None:  # not imported here: GymEnv picks the
        pytest.skip("needs mujoco")                   # headless GL backend before it does
    from streamrl.collectors import Collector
    from streamrl.data.datasets import load_dataset, write_minari_dataset
    from streamrl.envs import GymEnv

    collector = Collector(GymEnv("InvertedPendulum-v5"), None, frames_per_batch=300,
                          total_frames=300)
    batch = next(iter(collector))
    collector.shutdown()
    assert batch["observation"].dtype == torch.float64
    write_minari_dataset(batch, "invpend/random-v0", env="InvertedPendulum-v5")
    raw = load_dataset("minari:invpend/random-v0", batch_size=8)
    assert raw.sample()["observation"].dtype == torch.float64
    raw.close()
    config = _config("bc_offline", dataset="minari:invpend/random-v0", eval_episodes=1)
    result = PIPELINES["bc_offline"].train(config, run_dir=tmp_path)
    assert result.updates == 40 and len(result.evaluations) == 2


def test_a_resumed_run_makes_the_same_updates(datasets, tmp_path):
    p = PIPELINES["iql_offline"]
    straight = tmp_path / "straight"
    p.train(_config("iql_offline"), run_dir=straight)
    first, second = tmp_path / "first", tmp_path / "second"
    p.train(_config("iql_offline", updates=20), run_dir=first)
    result = p.train(_config("iql_offline"), run_dir=second, resume=first / "checkpoint.pt")
    assert result.updates == 40
    a = torch.load(straight / "checkpoint.pt", weights_only=True)["loss"]
    b = torch.load(second / "checkpoint.pt", weights_only=True)["loss"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _actor_weights(run_dir):
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)["loss"]
    return {k: v for k, v in state.items() if "actor_network" in k}


def test_cql_bc_steps_train_the_actor_by_behaviour_cloning_first(datasets, tmp_path):
    """During the BC warm-up the actor does not see Q: two runs whose critics differ (another
    min_q_weight) end with the same actor; after the warm-up, or without one, they do not."""
    p = PIPELINES["cql_offline"]
    runs = {}
    for bc_steps in (40, 20):
        for weight in (1.0, 5.0):
            run = tmp_path / f"bc{bc_steps}-w{weight}"
            p.train(_config("cql_offline", bc_steps=bc_steps, min_q_weight=weight,
                            eval_interval=40), run_dir=run)
            runs[bc_steps, weight] = _actor_weights(run)
    assert runs[40, 1.0] and runs[40, 1.0].keys() == runs[40, 5.0].keys()
    assert all(torch.equal(runs[40, 1.0][k], runs[40, 5.0][k]) for k in runs[40, 1.0])
    assert not all(torch.equal(runs[20, 1.0][k], runs[20, 5.0][k]) for k in runs[20, 1.0])
    assert not all(torch.equal(runs[40, 1.0][k], runs[20, 1.0][k]) for k in runs[40, 1.0])
    assert p.parse_args(["--dataset", DATASET, "--bc-steps", "7"])[0].bc_steps == 7
    with pytest.raises(ValueError, match="bc_steps must be a non-negative int"):
        _config("cql_offline", bc_steps=-1)


def test_command_line_errors_come_before_any_work(datasets, tmp_path, capsys):
    main = PIPELINES["bc_offline"].main
    with pytest.raises(SystemExit) as info:
        main(["--dataset", "minari:pendulum/none-v0", "--no-files"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "error: --dataset minari:pendulum/none-v0" in err and "pendulum/none-v0" in err
    with pytest.raises(SystemExit) as info:
        main(["--dataset", DATASET, "--env-name", "MountainCarContinuous-v0", "--no-files"])
    assert info.value.code == 2
    assert "does not match the env" in capsys.readouterr().err
    run = tmp_path / "run"
    assert main(["--dataset", DATASET, "--updates", "10", "--eval-interval", "10",
                 "--eval-episodes", "1", "--hidden", "8", "--run-dir", str(run),
                 "--no-progress"]) == 0
    assert "final eval return" in capsys.readouterr().out
    code = main(["--dataset", DATASET, "--updates", "10", "--run-dir", str(tmp_path / "again"),
                 "--resume", str(run / "checkpoint.pt")])
    assert code == 2
    assert "already at the budget --updates 10" in capsys.readouterr().err


O2O = load_pipeline(ROOT / "pipelines" / "iql_offline_to_online.py")


def _o2o_config(**overrides):
    options = dict(dataset=DATASET, updates=30, batch_size=32, minibatches_per_sample=2,
                   eval_interval=30, eval_episodes=1, hidden=16, online_frames=300,
                   frames_per_batch=50, learning_starts=100, online_eval_interval=150,
                   anneal_frames=200, rollout_placement="inline", logger="csv")
    return O2O.IQLOnlineConfig(**{**options, **overrides})


def test_offline_to_online_pretrains_then_fine_tunes_on_the_mixed_replay(datasets, tmp_path):
    result = O2O.train(_o2o_config(), run_dir=tmp_path)
    assert result.pretrain_updates == 30 and [u for u, _ in result.pretrain_evaluations] == [30]
    assert result.frames == 300 and result.updates > 30
    assert [f for f, _ in result.evaluations][-1] == 300
    assert (tmp_path / "pretrain" / "metrics.csv").is_file()
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["phase"] == "online" and state["frames"] == 300
    assert state["buffer"]["offline_fraction"] == 0.0  # annealed over the first 200 frames
    with open(tmp_path / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("loss_value")]
    assert rows and int(rows[0]["updates"]) > 30  # the online rows follow the pretraining's

    # resumed from the online phase: no pretraining, collection goes on to the new budget
    more = O2O.train(_o2o_config(online_frames=400), run_dir=tmp_path / "more",
                     resume=tmp_path / "checkpoint.pt")
    assert more.pretrain_evaluations == [] and more.frames == 400
    assert more.updates > result.updates


def test_offline_to_online_switches_to_sac_on_the_pretrained_critics(datasets, tmp_path):
    config = _o2o_config(online_loss="sac", online_lr=1e-3, online_alpha_init=0.2,
                         env_name="Pendulum-v1")
    probe = config.make_env()
    try:
        actor, learner, saved = O2O._iql.make_learner(config, probe)
    finally:
        probe.close()
    learner.updates = 30
    online, online_saved = O2O.make_online_learner(config, actor, learner, saved)
    iql, sac = saved["loss"].state_dict(), online_saved["loss"].state_dict()
    critics = [k for k in iql if k.startswith(("qvalue_network", "target_qvalue_network"))]
    assert critics and all(torch.equal(iql[k], sac[k]) for k in critics)
    assert type(online_saved["loss"]).__name__ == "SACLoss" and online.updates == 30
    trained = {v.data_ptr() for v in online_saved["loss"].actor_network_params.values(True, True)}
    assert trained == {p.data_ptr() for p in actor.parameters()}  # the played actor trains
    assert online_saved["optimizer"].param_groups[0]["lr"] == 1e-3
    assert float(online_saved["loss"].entropy_coef.alpha()) == pytest.approx(0.2)
    # "iql" keeps the pretraining's learner, at online_lr
    same, same_saved = O2O.make_online_learner(
        _o2o_config(online_lr=1e-3, env_name="Pendulum-v1"), actor, learner, saved)
    assert same is learner and same_saved["optimizer"].param_groups[0]["lr"] == 1e-3

    result = O2O.train(config, run_dir=tmp_path)
    assert result.frames == 300 and result.updates > 30
    with open(tmp_path / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("loss_alpha")]
    assert rows and int(rows[0]["updates"]) > 30  # SAC's losses online
    more = O2O.train(_o2o_config(online_loss="sac", online_frames=400), run_dir=tmp_path / "more",
                     resume=tmp_path / "checkpoint.pt")
    assert more.frames == 400 and more.updates > result.updates


def test_offline_to_online_fields_are_checked():
    with pytest.raises(ValueError, match=r"offline_fraction must be in \(0, 1\)"):
        _o2o_config(offline_fraction=0.0)
    with pytest.raises(ValueError, match="expectile must be in"):
        _o2o_config(expectile=0.0)
    with pytest.raises(ValueError, match="rollout_placement must be 'process' or 'inline'"):
        _o2o_config(rollout_placement="ray")
    with pytest.raises(ValueError, match="online_loss must be 'iql' or 'sac'"):
        _o2o_config(online_loss="td3")
    with pytest.raises(ValueError, match="online_lr must be None or > 0"):
        _o2o_config(online_lr=0.0)


def test_config_fields_are_checked():
    with pytest.raises(ValueError, match="dataset must be '<prefix>:<id>'"):
        _config("bc_offline", dataset="pendulum")
    with pytest.raises(ValueError, match="expectile must be in \\(0, 1\\)"):
        _config("iql_offline", expectile=1.0)
    with pytest.raises(ValueError, match="updates must be a positive int"):
        _config("cql_offline", updates=0)
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        _config("td3bc_offline", alpha=-1.0)


def _online_pieces(config):
    probe = config.make_env()
    try:
        actor, learner, saved = O2O._iql.make_learner(config, probe)
    finally:
        probe.close()
    learner.updates = config.updates
    return actor, learner, saved


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_offline_to_online_fresh_layer_norm_critics_calibrated_on_the_dataset(datasets):
    config = _o2o_config(online_loss="sac", online_critics="fresh", critic_layer_norm=True,
                         calibration_updates=5, env_name="Pendulum-v1")
    actor, learner, saved = _online_pieces(config)
    before, iql = _params(actor), saved["loss"].state_dict()
    dataset = config.load_dataset()
    try:
        online, online_saved = O2O.make_online_learner(config, actor, learner, saved,
                                                       dataset=dataset)
    finally:
        dataset.close()
    sac = online_saved["loss"]
    # two critics, LayerNorm after each hidden Linear: module.1, module.4 (else ReLU, output)
    params = sac.qvalue_network_params
    assert params["module", "1", "weight"].shape == params["module", "4", "bias"].shape == (2, 16)
    assert not any(k.startswith("qvalue_network") and torch.equal(v, iql[k])
                   for k, v in sac.state_dict().items() if k in iql)  # fresh, not IQL's
    # calibrated: 5 critic-only updates moved the critics, not the actor nor alpha
    assert online.updates == config.updates
    assert _same(before, _params(actor))
    assert float(sac.entropy_coef.alpha()) == pytest.approx(config.online_alpha_init)
    assert online_saved["optimizer"].state  # the critics' Adam moments
    assert all(p not in online_saved["optimizer"].state for p in actor.parameters())


def test_offline_to_online_actor_warmup_freezes_the_actor_then_releases_it(datasets):
    config = _o2o_config(online_loss="sac", actor_warmup_frames=2, updates_per_frame=1.0,
                         env_name="Pendulum-v1")
    actor, learner, saved = _online_pieces(config)
    online, online_saved = O2O.make_online_learner(config, actor, learner, saved)
    dataset = config.load_dataset()
    try:
        batch = dataset.sample(config.batch_size)
    finally:
        dataset.close()
    critics = online_saved["loss"].qvalue_network_params
    before, q_before = _params(actor), [v.clone() for v in critics.values(True, True)]
    online.step({"in": batch})  # one minibatch: update 31 of 32 frozen ones
    online.step({"in": batch})
    assert online.updates == config.updates + 2
    assert _same(before, _params(actor))  # frozen for the 2 warm-up updates
    assert not _same(q_before, list(critics.values(True, True)))  # the critics learn
    online.step({"in": batch})
    assert not _same(before, _params(actor))  # released


def test_offline_to_online_warmup_options_need_sac():
    with pytest.raises(ValueError, match="actor_warmup_frames needs online_loss='sac'"):
        _o2o_config(actor_warmup_frames=100)
    with pytest.raises(ValueError, match="critic_layer_norm needs online_critics='fresh'"):
        _o2o_config(online_loss="sac", critic_layer_norm=True)
    with pytest.raises(ValueError, match="online_critics must be 'pretrained' or 'fresh'"):
        _o2o_config(online_loss="sac", online_critics="random")
    with pytest.raises(ValueError, match="calibration_updates must be an int >= 0"):
        _o2o_config(online_loss="sac", calibration_updates=-1)


def test_offline_to_online_calibrates_on_the_dataset_at_the_switch_only(datasets, tmp_path,
                                                                        monkeypatch):
    seen = []

    def spy(config, actor, learner, saved, dataset=None):
        seen.append(dataset is not None and len(dataset) > 0)
        return O2O.make_online_learner(config, actor, learner, saved, dataset=dataset)

    monkeypatch.setattr(O2O._pipeline, "make_online_learner", spy)
    config = _o2o_config(online_loss="sac", online_critics="fresh", critic_layer_norm=True,
                         calibration_updates=3, actor_warmup_frames=100, online_frames=200,
                         env_name="Pendulum-v1")
    result = O2O.train(config, run_dir=tmp_path)
    assert result.frames == 200 and result.updates > 30
    O2O.train(_o2o_config(**{**vars(config), "online_frames": 250}),
              run_dir=tmp_path / "more", resume=tmp_path / "checkpoint.pt")
    assert seen == [True, False]  # a resumed online phase loads its calibrated critics
