"""Anonymisation in prepare: pseudonymous user and item ids (keyed hash) through the whole
recommender pipeline, and personal data masked in a team's own review texts."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml

from conftest import BIN, make_project, run
from forgeml.errors import ConfigError
from forgeml.privacy import pseudonyms
from forgeml.privacy.pii import mask_all

FORGEML = str(BIN / "forgeml")
KEY = "k3y-" + "5f0c9a1e" * 6
RECSYS = ["experiment=recsys_neumf", "trainer.max_epochs=2", "model.factors=8",
          "model.layers=[16,8]", "evaluate.num_negatives=20", "evaluate.bootstrap_samples=50",
          "evaluate.example_users=3", "data.anonymise.pseudonymise_ids=true",
          "trainer.enable_progress_bar=false"]


def _user(u: int) -> str:
    return f"alice.{u:03d}@corp.example"  # an id that is itself personal data


def _item(i: int) -> str:
    return f"SKU-QX7-{i:04d}"


def _write_interactions(folder) -> None:
    rng = np.random.default_rng(0)
    lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    for u in range(60):
        for t, i in enumerate(rng.choice(40, 12, replace=False)):
            lines.append(f"{_user(u)}\t{_item(int(i))}\t4\t{880000000 + 1000 * u + t}")
    (folder / "shop.inter").write_text("\n".join(lines) + "\n")
    (folder / "shop.item").write_text("item_id:token\ttitle:token_seq\n" + "".join(
        f"{_item(i)}\tProduct {i}\n" for i in range(40)))


def _compose(project, *extra) -> None:
    run([FORGEML, "compose", *RECSYS, *extra, "-o", "pipelines/recsys/params.yaml"], cwd=project)
    path = project / "pipelines/recsys/params.yaml"
    params = yaml.safe_load(path.read_text())
    params["data"]["source"] = {"_target_": "forgeml.data.movielens.atomic_files",
                                "inter_path": "shop.inter", "item_path": "shop.item"}
    path.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def pseudonymous(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("anon"))
    _write_interactions(project)
    _compose(project)
    env = {"FORGEML_PSEUDONYM_KEY": KEY}
    for stage in ("prepare", "train", "evaluate", "report"):
        run([FORGEML, stage, "-p", "pipelines/recsys/params.yaml"], cwd=project, env=env)
    return project


def test_pseudonyms_are_stable_for_a_key_and_differ_across_keys():
    key, other = b"a" * 32, b"b" * 32
    ids = np.array(["196", "22", "196"])
    first, again = pseudonyms.pseudonymise(key, "user", ids), \
        pseudonyms.pseudonymise(key, "user", ids)
    assert list(first) == list(again) and first[0] == first[2] != first[1]
    assert not set(first) & set(pseudonyms.pseudonymise(other, "user", ids))
    assert pseudonyms.pseudonym(key, "user", "7") != pseudonyms.pseudonym(key, "item", "7")
    assert all(p.startswith("u_") and "196" not in p for p in first)


@pytest.mark.slow  # the pseudonymous recommender pipeline or a review table: ~15-35 s
def test_no_raw_id_and_no_key_reach_any_output(pseudonymous):
    raw = [_user(u).encode() for u in range(60)] + [_item(i).encode() for i in range(40)]
    sources = {"shop.inter", "shop.item"}
    checked = 0
    for path in pseudonymous.rglob("*"):
        if not path.is_file() or path.name in sources or ".git" in path.parts:
            continue
        blob = path.read_bytes()
        leaked = [r for r in raw if r in blob]
        assert not leaked, f"{path.relative_to(pseudonymous)} holds raw ids {leaked[:2]}"
        assert KEY.encode() not in blob, f"{path} holds the key"
        checked += 1
    assert (pseudonymous / "mlflow.db").is_file() and checked > 20
    card = json.loads((pseudonymous / "data/prepared/recsys/data_card.json").read_text())
    anon = card["anonymisation"]
    assert anon["pseudonymised_ids"] and anon["key_id"] == pseudonyms.key_id(KEY.encode())
    assert anon["users_below_k_interactions"] == 0 and anon["min_group_size"] == 5
    report = (pseudonymous / "reports/recsys/report.md").read_text()
    assert "pseudonymous (keyed hash" in report and "Product" in report


@pytest.mark.slow  # the pseudonymous recommender pipeline or a review table: ~15-35 s
def test_recommend_maps_a_raw_id_with_the_key_and_refuses_without_it(pseudonymous):
    run_id = json.loads((pseudonymous / "models/recsys/run.json").read_text())["run_id"]
    command = [FORGEML, "recommend", "--run", run_id, "--user", _user(5), "-k", "3"]
    shown = run(command, cwd=pseudonymous, env={"FORGEML_PSEUDONYM_KEY": KEY}).stdout
    assert shown.count("Product") == 3
    refused = run(command, cwd=pseudonymous, check=False)
    assert refused.returncode != 0 and "FORGEML_PSEUDONYM_KEY" in refused.stderr
    assert "Traceback" not in refused.stderr
    wrong = run(command, cwd=pseudonymous, check=False,
                env={"FORGEML_PSEUDONYM_KEY": "another-key-of-enough-length"})
    assert wrong.returncode != 0 and "not the one" in wrong.stderr


@pytest.mark.parametrize("key", [None, "short"])
def test_pseudonymising_without_a_usable_key_stops_and_writes_nothing(tmp_path, key):
    project = make_project(tmp_path / "p")
    _write_interactions(project)
    _compose(project)
    result = run([FORGEML, "prepare", "-p", "pipelines/recsys/params.yaml"], cwd=project,
                 check=False, env={"FORGEML_PSEUDONYM_KEY": key} if key else None)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert ("needs a secret key" if key is None else "at least 16") in result.stderr
    assert not (project / "data/prepared/recsys").exists()


def test_key_file_is_read_and_an_unreadable_one_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv(pseudonyms.KEY_VARIABLE, raising=False)
    secret = tmp_path / "key"
    secret.write_text(KEY + "\n")
    monkeypatch.setenv(pseudonyms.KEY_FILE_VARIABLE, str(secret))
    assert pseudonyms.load_key() == KEY.encode()
    monkeypatch.setenv(pseudonyms.KEY_FILE_VARIABLE, str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="cannot be read"):
        pseudonyms.load_key()


# --- personal data in text ---
def test_masking_finds_known_personal_data_and_leaves_the_rest():
    texts = ["Mail jane.doe@example.com or call +1 415-555-0132 today",
             "Card 4111 1111 1111 1111, see https://shop.example.org/p?id=3",
             "Rated 10/10 in 2019, 3.5 stars, 12345 people agree"]
    masked, counts = mask_all(texts)
    assert counts == {"email": 1, "phone": 1, "url": 1, "card": 1}
    assert masked[0] == "Mail <EMAIL> or call <PHONE> today"
    assert masked[1] == "Card <CARD>, see <URL>"
    assert masked[2] == texts[2]


@pytest.mark.slow  # the pseudonymous recommender pipeline or a review table: ~15-35 s
def test_a_teams_own_reviews_are_masked_in_prepare_with_counts_in_the_card(tmp_path):
    project = make_project(tmp_path / "p")
    with (project / "mine.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["review", "y", "who"])
        for i in range(120):
            text = ("great film, loved it" if i % 2 else "boring and too long") + f" #{i}"
            text += f" write to fan{i}@mail.example.com" if i % 10 == 0 else ""
            text += f" call +1 415-555-01{i % 100:02d}" if i % 15 == 0 else ""
            writer.writerow([text, "fresh" if i % 2 else "rotten", f"g{i % 7}"])
    run([FORGEML, "compose", "experiment=sentiment_minilm", "-o", "s.yaml"], cwd=project)
    params = yaml.safe_load((project / "s.yaml").read_text())
    params["data"]["source"] = {"_target_": "forgeml.data.reviews.table", "path": "mine.csv",
                                "text_column": "review", "label_column": "y",
                                "group_column": "who"}
    (project / "s.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run([FORGEML, "prepare", "-p", "s.yaml"], cwd=project)
    card = json.loads((project / "data/prepared/sentiment/data_card.json").read_text())
    assert card["anonymisation"]["pii_masked"] == {"email": 12, "phone": 8, "url": 0, "card": 0}
    assert card["anonymisation"]["groups"] == 7
    prepared = "".join(p.read_text() for p in (project / "data/prepared/sentiment")
                       .glob("*.jsonl"))
    assert "@mail.example.com" not in prepared and "415-555" not in prepared
    assert prepared.count("<EMAIL>") == 12
