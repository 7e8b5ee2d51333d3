"""Label Studio in and out: the pending query as Label Studio tasks, and Label Studio's answers
read back into the pool's ledger.

Each task carries its item (an image as a data URL or a file Label Studio serves, or text), the
item's global index (``torch_al_index``) and the strategy's score, both as a data field (a column
the data manager sorts by) and as the score of a prediction. The labeling config is a single choice
among the pool's class names. Reading answers back checks every task before anything is recorded:
one bad task is an error that names it, and the ledger stays as it was.

Files need nothing beyond torch_al; a live project (:class:`LabelStudioProject`) needs
``label-studio-sdk``.
"""

import json
import os
from collections.abc import Iterable
from typing import NamedTuple
from xml.etree import ElementTree
from xml.sax.saxutils import quoteattr

import torch
from torch import Tensor

from torch_al.item_views import ItemView, Render, view_item
from torch_al.persistence import atomic_write_bytes
from torch_al.pool import ActivePool

INDEX_FIELD = "torch_al_index"
SCORE_FIELD = "torch_al_score"
ROUND_FIELD = "torch_al_round"
CHOICES = "label"  # the name of the labeling config's Choices tag, read back from each answer
TAGS = {"image": "Image", "text": "Text"}  # an item's kind is also its data field's name and its tag's name
PUSH_PART = 500  # tasks per import request
LOCAL_FILES_URL = "/data/local-files/?d={folder}/{file}"  # Label Studio's local-file serving


class LabelStudioImportError(ValueError):
    """Label Studio's answers cannot be recorded; the message names every task at fault."""


class Answers(NamedTuple):
    """Label Studio's answers, checked against the pool: the labels to record, and what was left."""

    indices: Tensor  # int64 global indices to record, in task order
    labels: Tensor  # int64 class labels
    unanswered: int  # tasks with no annotation yet
    recorded_before: int  # tasks whose answer the ledger already holds (an import repeated)


def labeling_config(classes: Iterable[str], kind: str = "image") -> str:
    """Label Studio's labeling config: the item (``$image`` or ``$text``) and one choice among
    ``classes``, the first ten with hotkeys 1..9, 0."""
    if kind not in TAGS:
        raise ValueError(f"kind must be one of {tuple(TAGS)}, got {kind!r}")
    choices = "".join(
        f"<Choice value={quoteattr(name)}" + (f' hotkey="{(k + 1) % 10}"' if k < 10 else "") + "/>" for k, name in enumerate(classes)
    )
    return (
        f'<View><{TAGS[kind]} name="{kind}" value="${kind}"/>'
        f'<Choices name="{CHOICES}" toName="{kind}" choice="single" showInline="true">{choices}</Choices></View>'
    )


def pending_tasks(
    pool: ActivePool, render: Render | None = None, image_dir: str | os.PathLike | None = None, image_url: str = LOCAL_FILES_URL, leave_out: Iterable[int] = ()
) -> list[dict]:
    """The pending query's items not yet labeled, as Label Studio tasks (in the order asked).

    Args:
        pool: a pool with a pending query and class names (:meth:`ActivePool.set_classes`).
        render: how to show an item that is not an image tensor, PIL image, path or text
            (:func:`torch_al.item_views.view_item`).
        image_dir: None puts each image in its task as a data URL; a folder writes each image there
            (``<index>.png``, or the item's own file) and the task refers to it by ``image_url``.
        image_url: with ``image_dir``, the URL of an image file: ``{file}`` its name, ``{folder}``
            the name of ``image_dir``, ``{index}`` the item's index. The default is what Label
            Studio's local-file serving answers when ``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true``,
            ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` is the folder that holds ``image_dir``, and the
            project has a Local Storage whose path is ``image_dir`` (docs/labeling.md).
        leave_out: indices not to make tasks of (those a project holds already): never rendered.
    """
    _check_can_export(pool)
    query, scores = pool.pending_query, pool.pending_scores
    asked = ~pool.labeled_mask[query] & ~torch.isin(query, torch.tensor(list(leave_out), dtype=torch.int64))
    indices = query[asked].tolist()
    views = [view_item(pool.inputs_of(pool.dataset[i]), render) for i in indices]
    if len({view.kind for view in views}) > 1:
        raise ValueError("the pending query mixes image and text items; one Label Studio project shows one kind: pass render= to show them alike")
    tasks = []
    for index, score, view in zip(indices, (scores[asked].tolist() if scores is not None else [None] * len(views)), views):
        data = {view.kind: _shown(view, index, image_dir, image_url), INDEX_FIELD: index, ROUND_FIELD: pool.round + 1}
        task: dict = {"data": data}
        if score is not None:
            data[SCORE_FIELD] = score
            task["predictions"] = [{"model_version": pool.pending_strategy or "torch_al", "score": score, "result": []}]
        tasks.append(task)
    return tasks


def _check_can_export(pool: ActivePool) -> None:
    if pool.pending_query is None:
        raise ValueError("the pool has no pending query to send for labelling: select one first (torch-al select)")
    if pool.classes is None:
        raise ValueError("the pool's classes have no names yet: set them (ActivePool.set_classes, or --classes) so annotators choose by name")


def _shown(view: ItemView, index: int, image_dir, image_url: str) -> str:
    if view.kind == "text":
        return view.content
    if image_dir is None:
        return view.data_url()
    suffix = {"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif", "image/webp": ".webp", "image/bmp": ".bmp"}.get(view.mime, ".png")
    name = f"{index}{suffix}"
    atomic_write_bytes(os.path.join(image_dir, name), view.content)
    return image_url.format(file=name, folder=os.path.basename(os.path.normpath(image_dir)), index=index)


def item_kind(tasks: list[dict]) -> str:
    """Whether the tasks show images or text."""
    return "text" if tasks and "text" in tasks[0]["data"] else "image"


def export_tasks(pool: ActivePool, path: str | os.PathLike, render: Render | None = None, image_dir: str | os.PathLike | None = None, image_url: str = LOCAL_FILES_URL) -> str:
    """Writes :func:`pending_tasks` to ``path`` (a JSON list, what Label Studio imports) and the
    labeling config beside it (``path`` with the suffix ``.xml``); returns the config's path."""
    tasks = pending_tasks(pool, render, image_dir, image_url)
    config_path = os.path.splitext(os.fspath(path))[0] + ".xml"
    atomic_write_bytes(path, json.dumps(tasks).encode())
    atomic_write_bytes(config_path, labeling_config(pool.classes, item_kind(tasks)).encode())
    return config_path


def read_answers(pool: ActivePool, tasks, relabel: bool = False) -> Answers:
    """Checks Label Studio's tasks (its JSON export, or tasks read through its API) against the
    pool and returns what to record. Nothing is changed.

    A task without annotations is left for later. Refused, every fault named by task: a task
    without ``torch_al_index``, an index that is neither pending nor already labeled the same, a
    class name that is not one of the pool's, a skipped or empty annotation, more than one choice,
    annotators who disagree, and a label other than the ledger's (unless ``relabel``).
    """
    if pool.classes is None:
        raise ValueError("the pool's classes have no names: set them (ActivePool.set_classes, or --classes) to read answers given by name")
    if not isinstance(tasks, list):
        raise LabelStudioImportError(f"a Label Studio JSON export is a list of tasks, got {type(tasks).__name__}")
    pending = set(pool.pending_query.tolist()) if pool.pending_query is not None else set()
    found: dict[int, tuple[int, str]] = {}  # index -> (label, the task that gave it)
    faults: list[str] = []
    unanswered = 0
    for position, task in enumerate(tasks):
        name = _task_name(task, position)
        try:
            index, label = _task_answer(task, name, pool, pending, relabel)
        except LabelStudioImportError as fault:
            faults.append(str(fault))
            continue
        if label is None:
            unanswered += 1
        elif index in found and found[index][0] != label:
            faults.append(f"{name} labels item {index} {pool.classes[label]!r}, but {found[index][1]} labels it {pool.classes[found[index][0]]!r}")
        else:
            found.setdefault(index, (label, name))
    if faults:
        shown = "\n  ".join(faults[:20]) + (f"\n  ... and {len(faults) - 20} more" if len(faults) > 20 else "")
        raise LabelStudioImportError(f"{len(faults)} of {len(tasks)} Label Studio tasks cannot be recorded (nothing was recorded):\n  {shown}")
    new = {index: label for index, (label, _) in found.items() if not (pool.is_labeled(index) and int(pool.labels_of([index])[0]) == label)}
    as_long = lambda values: torch.tensor(list(values), dtype=torch.int64)  # noqa: E731
    return Answers(as_long(new), as_long(new.values()), unanswered, len(found) - len(new))


def _task_name(task, position: int) -> str:
    identifier = task.get("id") if isinstance(task, dict) else None
    return f"task {identifier}" if identifier is not None else f"task #{position} of the file"


def _task_answer(task, name: str, pool: ActivePool, pending: set[int], relabel: bool) -> tuple[int, int | None]:
    """(index, label) of one task, label None when nobody answered it yet."""
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        hint = " (this looks like a JSON-MIN export: export as JSON)" if isinstance(task, dict) and INDEX_FIELD in task else ""
        raise LabelStudioImportError(f"{name} is not a Label Studio task with a 'data' object{hint}")
    index = task["data"].get(INDEX_FIELD)
    if isinstance(index, bool) or not isinstance(index, int):
        raise LabelStudioImportError(f"{name} has no integer {INDEX_FIELD} in its data (got {index!r}): it was not exported by torch_al")
    if not 0 <= index < len(pool):
        raise LabelStudioImportError(f"{name}: {INDEX_FIELD} {index} is outside the pool [0, {len(pool)})")
    annotations = task.get("annotations") or []
    if not isinstance(annotations, list):
        raise LabelStudioImportError(f"{name} (item {index}): 'annotations' must be a list, got {type(annotations).__name__}")
    labels = {_annotation_label(annotation, f"{name} (item {index})", pool.classes) for annotation in annotations}
    if len(labels) > 1:
        raise LabelStudioImportError(f"{name} (item {index}): its annotations disagree ({sorted(pool.classes[k] for k in labels)}): resolve them in Label Studio")
    if not labels:
        return index, None
    label = labels.pop()
    if pool.is_labeled(index):
        held = int(pool.labels_of([index])[0])
        if held != label and not relabel:
            raise LabelStudioImportError(f"{name} labels item {index} {pool.classes[label]!r}, but the ledger holds {pool.classes[held]!r} (pass relabel to record a correction)")
    elif index not in pending:
        raise LabelStudioImportError(f"{name}: item {index} is not in the pending query (round {pool.round + 1}) and not labeled: it was exported for another query")
    return index, label


def _annotation_label(annotation, name: str, classes: tuple[str, ...]) -> int:
    if not isinstance(annotation, dict):
        raise LabelStudioImportError(f"{name}: an annotation must be an object, got {type(annotation).__name__}")
    if annotation.get("was_cancelled"):
        raise LabelStudioImportError(f"{name} was skipped by an annotator (annotation {annotation.get('id')}): label it or delete the skipped annotation")
    chosen = [value for result in annotation.get("result") or [] if isinstance(result, dict) and result.get("type") == "choices" for value in (result.get("value") or {}).get("choices") or []]
    if not chosen:
        raise LabelStudioImportError(f"{name}: annotation {annotation.get('id')} chooses no class (an empty answer)")
    if len(chosen) > 1:
        raise LabelStudioImportError(f"{name}: annotation {annotation.get('id')} chooses {len(chosen)} classes {chosen} on a single-choice task")
    if chosen[0] not in classes:
        raise LabelStudioImportError(f"{name}: annotation {annotation.get('id')} chooses {chosen[0]!r}, which is not one of the pool's classes {list(classes)}")
    return classes.index(chosen[0])


def import_answers(pool: ActivePool, tasks, state_path: str | os.PathLike, relabel: bool = False) -> Answers:
    """:func:`read_answers`, then records them and saves the pool to ``state_path`` atomically
    (nothing is recorded on any error)."""
    answers = read_answers(pool, tasks, relabel)
    if answers.indices.numel():
        pool.label(answers.indices, answers.labels, relabel=relabel)
        pool.save(state_path)
    return answers


class LabelStudioProject:
    """A project on a running Label Studio server, reached with ``label-studio-sdk``.

    :meth:`push` sends the pending query's unlabeled items that the project does not hold yet
    (pushing twice adds nothing); :meth:`pull` reads the project's JSON export and records the
    answers as :func:`import_answers` does: all checked first, one atomic save. Label Studio keeps
    every answer, so a pull that crashes before its save loses nothing (pull again), and one after
    it has nothing left to record twice.

    Args:
        url: the server, e.g. ``http://127.0.0.1:8080``.
        api_key: a personal access token or a legacy API token (Label Studio's account settings);
            default ``$LABEL_STUDIO_API_KEY``.
        title: the project's title; :meth:`push` creates it when no project has it.
    """

    def __init__(self, url: str, title: str, api_key: str | None = None) -> None:
        try:
            from label_studio_sdk import LabelStudio
        except ImportError as error:
            raise ImportError("a live Label Studio project needs label-studio-sdk: pip install label-studio-sdk") from error
        api_key = api_key if api_key is not None else os.environ.get("LABEL_STUDIO_API_KEY")
        if not api_key:
            raise ValueError("Label Studio needs an access token: set LABEL_STUDIO_API_KEY (Account & Settings → Personal Access Token)")
        self.client, self.title = LabelStudio(base_url=url, api_key=api_key), title

    def project_id(self) -> int | None:
        """The id of the project titled :attr:`title`, or None when there is none."""
        project = self._project()
        return None if project is None else project.id

    def _project(self):
        found = [project for project in self.client.projects.list(title=self.title) if project.title == self.title]  # the title filter matches parts
        if len(found) > 1:
            raise ValueError(f"{len(found)} Label Studio projects are titled {self.title!r} (ids {[p.id for p in found]}): give one a unique title")
        return found[0] if found else None

    def push(self, pool: ActivePool, render: Render | None = None) -> int:
        """Sends the pending query's unlabeled items the project lacks (only those are rendered);
        creates the project when none has the title, else checks it offers the pool's classes.
        Returns how many tasks were sent."""
        _check_can_export(pool)
        project = self._project()
        held: set[int] = set()
        if project is not None:
            _check_project_classes(project.label_config, pool.classes, self.title)
            held = {task.data.get(INDEX_FIELD) for task in self.client.tasks.list(project=project.id, fields="task_only", page_size=100)}
        tasks = pending_tasks(pool, render, leave_out=held)
        if project is None:
            project = self.client.projects.create(title=self.title, label_config=labeling_config(pool.classes, item_kind(tasks)))
        # In parts (Label Studio takes ~1 ms a task, and a request body up to 250 MiB): a push cut
        # short leaves whole parts behind it, and the next push sends only what is missing.
        for start in range(0, len(tasks), PUSH_PART):
            self.client.projects.import_tasks(id=project.id, request=tasks[start : start + PUSH_PART], request_options={"timeout_in_seconds": 600})
        return len(tasks)

    def pull(self, pool: ActivePool, state_path: str | os.PathLike, relabel: bool = False) -> Answers:
        """Records the project's answers in the pool and saves it (see :func:`import_answers`)."""
        project = self.project_id()
        if project is None:
            raise ValueError(f"no Label Studio project is titled {self.title!r}: push a query first")
        return import_answers(pool, self.client.projects.exports.as_json(project), state_path, relabel)


def _check_project_classes(label_config: str, classes: tuple[str, ...], title: str) -> None:
    choices = ElementTree.fromstring(label_config).find(f".//Choices[@name='{CHOICES}']")
    found = tuple(choice.get("value") for choice in choices) if choices is not None else None
    if found != tuple(classes):
        raise ValueError(f"Label Studio project {title!r} offers the choices {list(found) if found else None}, but the pool's classes are {list(classes)}")


__all__ = ["Answers", "LabelStudioImportError", "LabelStudioProject", "export_tasks", "import_answers", "labeling_config", "pending_tasks", "read_answers"]
