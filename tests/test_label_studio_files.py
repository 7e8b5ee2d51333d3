"""Label Studio files: the pending query written as tasks with its labeling config, and Label
Studio's JSON export read back into the ledger — every fault named, nothing recorded on any."""

import base64
import json
import xml.etree.ElementTree as ElementTree

import pytest
import torch
from torch.utils.data import TensorDataset

from torch_al import ActivePool
from torch_al.cli import main
from torch_al.integrations.label_studio import (
    INDEX_FIELD,
    LabelStudioImportError,
    export_tasks,
    import_answers,
    labeling_config,
    pending_tasks,
    read_answers,
)
from torch_al.item_views import png_bytes

CLASSES = ["t-shirt", "trouser", "pullover"]


def make_pool(classes=CLASSES) -> ActivePool:
    images = torch.rand(30, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    pool = ActivePool(TensorDataset(images), target_key=None, classes=classes)
    pool.label([0, 1], [0, 2])
    pool.propose([7, 3, 12, 20], torch.tensor([0.9, 0.7, 0.5, 0.1]), strategy="pfk")
    return pool


def answered(task: dict, *choices, task_id=None, cancelled=False) -> dict:
    """A task as Label Studio's JSON export gives it once annotated (one annotation per entry of choices)."""
    result = dict(task, id=task_id if task_id is not None else 1000 + task["data"][INDEX_FIELD])
    result["annotations"] = [
        {"id": 50 + k, "was_cancelled": cancelled, "result": [] if chosen is None else [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": chosen}}]}
        for k, chosen in enumerate(choices)
    ]
    return result


def ledger_rows(pool: ActivePool):
    ledger = pool.ledger
    return ledger.index.tolist(), ledger.label.tolist(), ledger.round.tolist()


def test_labeling_config_is_one_choice_among_the_escaped_class_names():
    names = ['say "hi"', "a<b & c", "dog"]
    root = ElementTree.fromstring(labeling_config(names))
    assert [child.tag for child in root] == ["Image", "Choices"]
    choices = root.find("Choices")
    assert choices.get("choice") == "single" and choices.get("name") == "label" and choices.get("toName") == "image"
    assert [c.get("value") for c in choices] == names and [c.get("hotkey") for c in choices] == ["1", "2", "3"]
    assert ElementTree.fromstring(labeling_config(names, "text")).find("Text").get("value") == "$text"
    many = ElementTree.fromstring(labeling_config([f"c{k}" for k in range(12)])).find("Choices")
    assert [c.get("hotkey") for c in many] == ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0", None, None]
    with pytest.raises(ValueError, match="kind must be one of"):
        labeling_config(names, "audio")


def test_tasks_carry_the_unlabeled_pending_items_their_index_score_and_image():
    pool = make_pool()
    pool.label([3], [1])
    tasks = pending_tasks(pool)
    assert [task["data"][INDEX_FIELD] for task in tasks] == [7, 12, 20]  # the query's order, answered item left out
    assert [task["data"][INDEX_FIELD] for task in pending_tasks(pool, leave_out={12, 99})] == [7, 20]
    first = tasks[0]
    assert first["data"]["torch_al_score"] == pytest.approx(0.9) and first["data"]["torch_al_round"] == 1
    assert first["predictions"] == [{"model_version": "pfk", "score": pytest.approx(0.9), "result": []}]
    prefix, encoded = first["data"]["image"].split(",", 1)
    assert prefix == "data:image/png;base64" and base64.b64decode(encoded) == png_bytes(pool.dataset[7][0])


def test_image_files_text_items_and_the_written_config(tmp_path):
    pool = make_pool()
    tasks = pending_tasks(pool, image_dir=tmp_path / "images", image_url="/files/{folder}/{index}/{file}")
    assert tasks[1]["data"]["image"] == "/files/images/3/3.png" and (tmp_path / "images" / "3.png").read_bytes() == png_bytes(pool.dataset[3][0])
    texts = pending_tasks(pool, render=lambda x: f"mean {float(x.mean()):.3f}")
    assert texts[0]["data"]["text"] == f"mean {float(pool.dataset[7][0].mean()):.3f}" and "image" not in texts[0]["data"]
    config = export_tasks(pool, tmp_path / "tasks.json", render=lambda x: "text")
    written = json.loads((tmp_path / "tasks.json").read_text())
    assert config == str(tmp_path / "tasks.xml") and written == [dict(task, data=dict(task["data"], text="text")) for task in texts]
    assert ElementTree.fromstring((tmp_path / "tasks.xml").read_text()).find("Text") is not None


def test_what_cannot_be_exported_is_refused():
    pool = make_pool()
    with pytest.raises(ValueError, match="mixes image and text items"):
        pending_tasks(pool, render=lambda x: "text" if x.mean() > 0.5 else x)
    bare = ActivePool(TensorDataset(torch.rand(5, 1, 2, 2)), target_key=None)
    bare.propose([1])
    with pytest.raises(ValueError, match="classes have no names"):
        pending_tasks(bare)
    with pytest.raises(ValueError, match="no pending query"):
        pending_tasks(ActivePool(TensorDataset(torch.rand(5, 1, 2, 2)), target_key=None, classes=CLASSES))


def test_answers_round_trip_into_the_ledger_and_a_repeated_import_records_nothing(tmp_path):
    pool = make_pool()
    tasks = pending_tasks(pool)
    export = [answered(tasks[0], ["pullover"]), answered(tasks[1], ["t-shirt"], ["t-shirt"]), tasks[2], answered(tasks[3], ["trouser"])]
    answers = import_answers(pool, export, tmp_path / "pool.pt")
    assert answers.indices.tolist() == [7, 3, 20] and answers.labels.tolist() == [2, 0, 1]
    assert answers.unanswered == 1 and answers.recorded_before == 0
    saved = make_pool().load(tmp_path / "pool.pt")
    assert ledger_rows(saved) == ([0, 1, 7, 3, 20], [0, 2, 2, 0, 1], [0, 0, 1, 1, 1]) and saved.pending_query is not None
    again = import_answers(pool, export, tmp_path / "pool.pt")
    assert again.indices.numel() == 0 and again.recorded_before == 3 and ledger_rows(pool) == ledger_rows(saved)
    export[2] = answered(tasks[2], ["trouser"])
    import_answers(pool, export, tmp_path / "pool.pt")
    assert pool.pending_query is None and pool.round == 1
    assert import_answers(pool, export, tmp_path / "pool.pt").recorded_before == 4  # after the round: still nothing twice


@pytest.mark.parametrize(
    "fault, message",
    [
        (lambda t: dict(t, data={"image": "x"}), "task 1007 has no integer torch_al_index in its data"),
        (lambda t: dict(t, data=dict(t["data"], torch_al_index=True)), "has no integer torch_al_index"),
        (lambda t: dict(t, data=dict(t["data"], torch_al_index=99)), r"torch_al_index 99 is outside the pool \[0, 30\)"),
        (lambda t: dict(t, data=dict(t["data"], torch_al_index=9)), r"item 9 is not in the pending query \(round 1\) and not labeled"),
        (lambda t: answered(t, ["cat"]), r"chooses 'cat', which is not one of the pool's classes"),
        (lambda t: answered(t, ["trouser", "pullover"]), "chooses 2 classes .* on a single-choice task"),
        (lambda t: answered(t, ["trouser"], cancelled=True), "task 1007 \\(item 7\\) was skipped by an annotator"),
        (lambda t: answered(t, None), "chooses no class \\(an empty answer\\)"),
        (lambda t: answered(t, ["trouser"], ["pullover"]), r"annotations disagree \(\['pullover', 'trouser'\]\)"),
        (lambda t: dict(answered(t, ["trouser"]), data=dict(t["data"], torch_al_index=1)), "labels item 1 'trouser', but the ledger holds 'pullover'"),
        (lambda t: {INDEX_FIELD: 7, "label": "trouser"}, "looks like a JSON-MIN export"),
        (lambda t: "a string", "task #0 of the file is not a Label Studio task"),
        (lambda t: dict(t, annotations={"result": []}), "'annotations' must be a list"),
    ],
)
def test_any_fault_names_its_task_and_records_nothing(tmp_path, fault, message):
    pool = make_pool()
    pool.save(tmp_path / "pool.pt")
    before = (tmp_path / "pool.pt").read_bytes()
    tasks = pending_tasks(pool)
    export = [fault(answered(tasks[0], ["trouser"])), answered(tasks[1], ["pullover"])]
    with pytest.raises(LabelStudioImportError, match=message) as raised:
        import_answers(pool, export, tmp_path / "pool.pt")
    assert "nothing was recorded" in str(raised.value)
    assert ledger_rows(pool) == ([0, 1], [0, 2], [0, 0]) and (tmp_path / "pool.pt").read_bytes() == before


def test_two_tasks_of_one_item_must_agree_and_relabel_records_a_correction(tmp_path):
    pool = make_pool()
    tasks = pending_tasks(pool)
    same = [answered(tasks[0], ["trouser"], task_id=1), answered(tasks[0], ["trouser"], task_id=2)]
    assert read_answers(pool, same).indices.tolist() == [7]
    with pytest.raises(LabelStudioImportError, match="task 2 labels item 7 'pullover', but task 1 labels it 'trouser'"):
        read_answers(pool, [same[0], answered(tasks[0], ["pullover"], task_id=2)])
    correction = answered(dict(tasks[0], data=dict(tasks[0]["data"], torch_al_index=1)), ["t-shirt"])
    answers = import_answers(pool, [correction], tmp_path / "pool.pt", relabel=True)
    assert answers.indices.tolist() == [1] and ledger_rows(pool)[:2] == ([0, 1, 1], [0, 2, 0])
    with pytest.raises(LabelStudioImportError, match="a list of tasks"):
        read_answers(pool, {"tasks": []})


def test_export_and_import_commands(tmp_path, capsys):
    unnamed = make_pool(classes=None)
    data = tmp_path / "data.pt"
    torch.save(unnamed.dataset.tensors[0], data)
    unnamed.save(tmp_path / "pool.pt")
    common = ["--state", str(tmp_path / "pool.pt"), "--data", str(data)]
    assert main(["export", *common, "--out", str(tmp_path / "tasks.json")]) == 1
    assert "names no classes yet: pass --classes" in capsys.readouterr().err
    assert main(["export", *common, "--out", str(tmp_path / "tasks.json"), "--classes", *CLASSES]) == 0
    assert "wrote 4 Label Studio tasks for round 1" in capsys.readouterr().out
    assert main(["export", *common, "--out", str(tmp_path / "other.json"), "--classes", *reversed(CLASSES)]) == 1
    assert "are not the ['t-shirt', 'trouser', 'pullover'] recorded" in capsys.readouterr().err
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    (tmp_path / "export.json").write_text(json.dumps([answered(task, [CLASSES[k % 3]]) for k, task in enumerate(tasks)]))
    assert main(["import", *common, "--file", str(tmp_path / "export.json")]) == 0
    assert "4 labels recorded (0 already in the ledger, 0 tasks not answered yet)" in capsys.readouterr().out
    saved = make_pool().load(tmp_path / "pool.pt")
    assert saved.round == 1 and saved.labels_of([7, 3, 12, 20]).tolist() == [0, 1, 2, 0]
    with pytest.raises(SystemExit):
        main(["import", *common, "--file", str(tmp_path / "export.json"), "--format", "csv"])
    assert "--format must be label-studio, got 'csv'" in capsys.readouterr().err
