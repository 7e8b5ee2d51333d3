"""Task models of the papers' experiments, sized for Fashion-MNIST / MNIST (1×28×28 inputs)."""

from collections.abc import Sequence

from torch import Tensor, nn


class LeNet(nn.Module):
    """The LeNet of the PFK paper: conv1 10 ch, conv2 20 ch, fc1 50, fc2 → classes.

    Every step is its own module, so descriptors can be taken before a non-linearity (``conv1``,
    ``conv2``, ``fc1``: the paper's z̃) or after it (``act1``, ``act2``, ``act3``: the authors'
    code). L = 20 is ``conv2`` alone, L = 80 is ``conv1`` + ``conv2`` + ``fc1``.
    ``descriptor_layers``, the default of the matching strategies (PCC, PFK, EBA), is the authors'
    L = 80 after the non-linearities.
    """

    descriptor_layers = ("act1", "act2", "act3")

    def __init__(self, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 10, kernel_size=5)
        self.pool1 = nn.MaxPool2d(2)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.drop2 = nn.Dropout2d(0.5)
        self.pool2 = nn.MaxPool2d(2)
        self.act2 = nn.ReLU()
        self.fc1 = nn.Linear(320, 50)
        self.act3 = nn.ReLU()
        self.drop3 = nn.Dropout(0.5)
        self.fc2 = nn.Linear(50, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.act1(self.pool1(self.conv1(x)))
        x = self.act2(self.pool2(self.drop2(self.conv2(x))))
        x = self.drop3(self.act3(self.fc1(x.flatten(1))))
        return self.fc2(x)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with batch norm and an identity (or 1×1 projection) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        y = self.act(self.bn1(self.conv1(x)))
        return self.act(self.bn2(self.conv2(y)) + self.shortcut(x))


class SmallResNet(nn.Module):
    """A ResNet for 28×28 inputs: a stem, one stage per width (the first at stride 1, the others
    at stride 2), global average pooling and a linear classifier. Descriptor layers: ``stem``,
    ``stage1`` … ``stageS``; ``descriptor_layers`` defaults to the last two stages."""

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        widths: Sequence[int] = (32, 64, 128),
        blocks_per_stage: int = 2,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
        previous = widths[0]
        for index, width in enumerate(widths, start=1):
            blocks = [BasicBlock(previous if b == 0 else width, width, 1 if (index == 1 or b > 0) else 2) for b in range(blocks_per_stage)]
            self.add_module(f"stage{index}", nn.Sequential(*blocks))
            previous = width
        self.num_stages = len(widths)
        self.descriptor_layers = tuple(f"stage{index}" for index in range(max(1, len(widths) - 1), len(widths) + 1))
        self.head = nn.Linear(previous, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for index in range(1, self.num_stages + 1):
            x = getattr(self, f"stage{index}")(x)
        return self.head(x.mean(dim=(2, 3)))


def tiny_vit(in_channels: int = 1, image_size: int = 28, num_classes: int = 10, width: int = 64, depth: int = 2, heads: int = 4, patch: int = 7) -> nn.Module:
    """A small Hugging Face ``ViTForImageClassification`` built from its config (random weights,
    nothing downloaded; needs ``pip install transformers``): ``patch``-pixel patches, ``depth``
    blocks of ``width`` channels and ``heads`` heads. It returns a ``ModelOutput`` whose
    ``logits`` the strategies read. ``descriptor_layers`` are the blocks' outputs
    (``vit.layers.0`` …), token sequences (B, 1 + patches, width) pooled over the tokens
    (``descriptor_tokens = "mean"``)."""
    try:
        import transformers
    except ImportError as error:
        raise ImportError("model 'vit' is a Hugging Face ViT: pip install transformers") from error
    config = transformers.ViTConfig(
        image_size=image_size, patch_size=patch, num_channels=in_channels, hidden_size=width, num_hidden_layers=depth,
        num_attention_heads=heads, intermediate_size=2 * width, num_labels=num_classes,
    )  # fmt: skip
    model = transformers.ViTForImageClassification(config)
    names = {name for name, _ in model.named_modules()}
    model.descriptor_layers = tuple(name for name in (f"vit.layers.{block}" for block in range(depth)) if name in names) or tuple(f"vit.encoder.layer.{block}" for block in range(depth))
    model.descriptor_tokens = "mean"
    return model
