"""Label Studio for real: a server started for these tests, the query sent to it as a file and
live, answered through its API as an annotator would, and read back — the ledger equals the
answers, a pull repeated or interrupted records nothing twice and loses nothing."""

import json
import os
import urllib.request

import pytest
import torch
from label_studio_server import API_KEY, start_label_studio, stop
from torch.utils.data import TensorDataset

from torch_al import ActivePool
from torch_al.cli import main
from torch_al.integrations.label_studio import INDEX_FIELD, LabelStudioImportError, LabelStudioProject, labeling_config, pending_tasks
from torch_al.item_views import png_bytes

CLASSES = ["t-shirt", "trouser", "pullover", "dress"]
pytest.importorskip("label_studio_sdk", reason="label-studio-sdk is not installed (pip install label-studio-sdk)")


@pytest.fixture(scope="module")
def served():
    url, process, files_root = start_label_studio()
    yield url, files_root
    stop(process)


@pytest.fixture
def label_studio(served):
    return served[0]


@pytest.fixture
def client(label_studio):
    from label_studio_sdk import LabelStudio

    return LabelStudio(base_url=label_studio, api_key=API_KEY)


def make_pool(query) -> ActivePool:
    images = torch.rand(50, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    pool = ActivePool(TensorDataset(images), target_key=None, classes=CLASSES)
    pool.propose(query, torch.linspace(0.9, 0.1, len(query)), strategy="pfk")
    return pool


def annotate(client, project_id: int, answers: dict[int, str | None]) -> None:
    """Answers tasks through the API as an annotator in the browser would (None: skips the task)."""
    for task in client.tasks.list(project=project_id, fields="task_only", page_size=100):
        index = task.data[INDEX_FIELD]
        if index in answers:
            chosen = answers[index]
            result = [] if chosen is None else [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [chosen]}}]
            client.annotations.create(id=task.id, result=result, was_cancelled=chosen is None)


def ledger_rows(pool: ActivePool):
    ledger = pool.ledger
    return sorted(zip(ledger.index.tolist(), ledger.label.tolist()))


def test_files_round_trip_through_label_studio(tmp_path, label_studio, client, capsys):
    pool = make_pool([4, 17, 9, 33])
    torch.save(pool.dataset.tensors[0], tmp_path / "data.pt")
    pool.save(tmp_path / "pool.pt")
    common = ["--state", str(tmp_path / "pool.pt"), "--data", str(tmp_path / "data.pt")]
    assert main(["export", *common, "--out", str(tmp_path / "tasks.json")]) == 0
    # What a user does in Label Studio: a project with the written labeling config, the tasks file imported.
    project = client.projects.create(title="files round trip", label_config=(tmp_path / "tasks.xml").read_text()).id
    client.projects.import_tasks(id=project, request=json.loads((tmp_path / "tasks.json").read_text()))
    answers = {4: "dress", 17: "t-shirt", 9: "trouser", 33: "dress"}
    annotate(client, project, answers)
    request = urllib.request.Request(f"{label_studio}/api/projects/{project}/export?exportType=JSON", headers={"Authorization": f"Token {API_KEY}"})
    with urllib.request.urlopen(request, timeout=60) as response:  # the file the UI's Export → JSON downloads
        (tmp_path / "export.json").write_bytes(response.read())
    assert main(["import", *common, "--file", str(tmp_path / "export.json")]) == 0
    assert "4 labels recorded" in capsys.readouterr().out
    saved = make_pool([1]).load(tmp_path / "pool.pt")
    assert saved.round == 1 and ledger_rows(saved) == sorted((index, CLASSES.index(name)) for index, name in answers.items())
    scores = {task.data[INDEX_FIELD]: task.data["torch_al_score"] for task in client.tasks.list(project=project, fields="task_only")}
    assert scores == pytest.approx({4: 0.9, 17: 0.9 - 0.8 / 3, 9: 0.1 + 0.8 / 3, 33: 0.1})


def test_push_annotate_pull_live(tmp_path, label_studio, client, monkeypatch, capsys):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", API_KEY)
    monkeypatch.setattr("torch_al.integrations.label_studio.PUSH_PART", 2)  # 5 tasks go in 3 requests
    pool = make_pool([3, 8, 21, 40, 12])
    torch.save(pool.dataset.tensors[0], tmp_path / "data.pt")
    pool.save(tmp_path / "pool.pt")
    live = ["--state", str(tmp_path / "pool.pt"), "--data", str(tmp_path / "data.pt"), "--url", label_studio, "--project", "live"]
    assert main(["push", *live]) == 0 and "sent 5 tasks of round 1" in capsys.readouterr().out
    assert main(["push", *live]) == 0 and "sent 0 tasks" in capsys.readouterr().out  # pushing twice adds nothing
    project = LabelStudioProject(label_studio, "live", API_KEY)
    project_id = project.project_id()
    annotate(client, project_id, {3: "trouser", 8: "pullover", 21: "t-shirt"})
    assert main(["pull", *live[:4], "--url", label_studio, "--project", "live"]) == 0
    assert "3 labels recorded (0 already in the ledger, 2 tasks not answered yet)" in capsys.readouterr().out
    assert main(["pull", *live[:4], "--url", label_studio, "--project", "live"]) == 0
    assert "0 labels recorded (3 already in the ledger" in capsys.readouterr().out  # pulling twice records nothing twice

    annotate(client, project_id, {40: "dress", 12: "trouser"})
    before = (tmp_path / "pool.pt").read_bytes()
    with monkeypatch.context() as crash:
        crash.setattr("torch_al.pool.save_state", lambda *args, **kwargs: (_ for _ in ()).throw(OSError("disk gone mid-pull")))
        with pytest.raises(OSError, match="disk gone"):
            project.pull(make_pool([1]).load(tmp_path / "pool.pt"), tmp_path / "pool.pt")
    assert (tmp_path / "pool.pt").read_bytes() == before  # the crash lost nothing: pull again
    answers = project.pull(make_pool([1]).load(tmp_path / "pool.pt"), tmp_path / "pool.pt")
    assert answers.indices.tolist() == [40, 12] and answers.recorded_before == 3
    saved = make_pool([1]).load(tmp_path / "pool.pt")
    assert saved.round == 1 and ledger_rows(saved) == [(3, 1), (8, 2), (12, 1), (21, 0), (40, 3)]

    saved.propose([5, 6], strategy="pfk")  # the next round: a skipped task is refused, naming it
    saved.save(tmp_path / "pool.pt")
    rendered = []
    show = lambda inputs: rendered.append(inputs) or inputs  # noqa: E731
    assert project.push(saved, render=show) == 2 and len(rendered) == 2
    assert project.push(saved, render=show) == 0 and len(rendered) == 2  # what the project holds is not rendered again
    annotate(client, project_id, {5: None, 6: "dress"})
    with pytest.raises(LabelStudioImportError, match=r"task \d+ \(item 5\) was skipped by an annotator.*") as refused:
        project.pull(saved, tmp_path / "pool.pt")
    assert "nothing was recorded" in str(refused.value) and not saved.is_labeled(6)


def test_images_exported_as_files_are_served_by_label_studio(served, client):
    url, files_root = served
    pool = make_pool([6, 2])
    image_dir = os.path.join(files_root, "round1")
    tasks = pending_tasks(pool, image_dir=image_dir)
    assert tasks[0]["data"]["image"] == "/data/local-files/?d=round1/6.png"
    # What the user sets up in Label Studio: a project with a Local Storage on the folder.
    project = client.projects.create(title="image files", label_config=labeling_config(CLASSES)).id
    client.import_storage.local.create(project=project, path=image_dir, use_blob_urls=False)
    client.projects.import_tasks(id=project, request=tasks)
    for task in client.tasks.list(project=project, fields="task_only"):
        request = urllib.request.Request(url + task.data["image"], headers={"Authorization": f"Token {API_KEY}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.read() == png_bytes(pool.dataset[task.data[INDEX_FIELD]][0])


def test_a_project_with_other_classes_is_refused(label_studio, client):
    cats_and_dogs = "<View><Image name='image' value='$image'/><Choices name='label' toName='image'><Choice value='cat'/><Choice value='dog'/></Choices></View>"
    client.projects.create(title="other classes", label_config=cats_and_dogs)
    with pytest.raises(ValueError, match=r"offers the choices \['cat', 'dog'\], but the pool's classes are"):
        LabelStudioProject(label_studio, "other classes", API_KEY).push(make_pool([1]))
    with pytest.raises(ValueError, match="set LABEL_STUDIO_API_KEY"):
        LabelStudioProject(label_studio, "x", api_key="")
