"""Functional dropout made a module, so that MC dropout can sample it."""

from torch import nn

from torch_al.embeddings import layer_names


def dropout_as_module(model: nn.Module, rate: float | None = None, head: str | None = None) -> nn.Module:
    """Moves the dropout a model applies with ``F.dropout`` in its ``forward`` into an
    ``nn.Dropout(rate)`` module in front of its classifier, in place, and returns the model.

    timm's CNNs (ResNet, EfficientNet, ...) apply their ``drop_rate`` as
    ``F.dropout(features, drop_rate, training)`` right before the classifier: that call is no
    module, so MC dropout (BALD, max entropy, variation ratio, BatchBALD) cannot see it and refuses
    the model. Here ``model.drop_rate`` becomes 0 and the classifier ``head`` becomes
    ``nn.Sequential(nn.Dropout(rate), head)``: training draws the same masks from the same random
    numbers as before and eval is unchanged, while the strategies now sample the module with their
    consistent masks. The classifier's parameters move under ``head.1`` (``fc.weight`` becomes
    ``fc.1.weight``): convert before loading a checkpoint saved after the conversion, or after
    loading one saved before it.

    Args:
        model: the network; a timm model keeps its rate in ``drop_rate``.
        rate: the dropout probability; default ``model.drop_rate``.
        head: the classifier's module name; default timm's ``get_classifier()``, else the last
            ``nn.Linear``.

    Raises:
        ValueError: no rate to move (``rate`` not given, no positive ``drop_rate``), a rate outside
            (0, 1), or no such head.

    Only dropout applied right before the classifier moves this way; dropout elsewhere in
    ``forward`` stays functional (and unsampled) — add modules there yourself.
    """
    chosen = rate if rate is not None else getattr(model, "drop_rate", None)
    if not isinstance(chosen, (int, float)) or isinstance(chosen, bool) or not 0 < chosen < 1:
        given = f"rate={rate!r}" if rate is not None else f"{type(model).__name__}.drop_rate = {getattr(model, 'drop_rate', 'absent')}"
        raise ValueError(f"dropout_as_module: the dropout probability must be in (0, 1); got {given} (pass rate=...)")
    name = head if head is not None else _classifier_name(model)
    modules = dict(model.named_modules())
    if name not in modules or not name:
        raise ValueError(f"dropout_as_module: the model has no module named {name!r}; its layers: {layer_names(modules)}")
    parent_name, _, child = name.rpartition(".")
    setattr(modules[parent_name], child, nn.Sequential(nn.Dropout(float(chosen)), modules[name]))
    if hasattr(model, "drop_rate"):
        model.drop_rate = 0.0  # the functional call is skipped (timm tests `if self.drop_rate`)
    return model


def _classifier_name(model: nn.Module) -> str:
    classifier = model.get_classifier() if callable(getattr(model, "get_classifier", None)) else None
    if classifier is None:
        linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
        classifier = linears[-1] if linears else None
    names = {id(module): name for name, module in model.named_modules()}
    if classifier is None or id(classifier) not in names:
        raise ValueError(f"dropout_as_module: {type(model).__name__} has no classifier to find; name it with head=...")
    return names[id(classifier)]
