"""How items are shown to people: our PNG encoder against Pillow's decoder, files, text, the
render hook, and the errors for items that cannot be shown."""

import base64
import io
import pathlib

import numpy as np
import pytest
import torch
from PIL import Image

from torch_al.item_views import ItemView, png_bytes, rescaled, view_item


def decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("size", [(1, 1), (5, 3), (28, 28)])
def test_uint8_images_decode_to_the_same_pixels(channels, size):
    image = torch.randint(0, 256, (channels, *size), dtype=torch.uint8)
    pixels = decoded(png_bytes(image))
    expected = image.permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(pixels, expected[..., 0] if channels == 1 else expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_float_images_in_unit_range_are_rounded_to_bytes(dtype):
    image = torch.rand(3, 6, 7).to(dtype)
    image[0, 0, 0], image[1, 0, 0] = 0.0, 1.0
    reference = (image.double() * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(decoded(png_bytes(image)), reference)


def test_two_dimensional_and_strided_images():
    grey = torch.rand(8, 9)
    np.testing.assert_array_equal(decoded(png_bytes(grey)), (grey * 255).round().to(torch.uint8).numpy())
    transposed = torch.randint(0, 256, (3, 9, 8), dtype=torch.uint8).transpose(1, 2)
    np.testing.assert_array_equal(decoded(png_bytes(transposed)), transposed.permute(1, 2, 0).numpy())


@pytest.mark.parametrize(
    "image, message",
    [
        (torch.rand(2, 4, 4), r"\(C, H, W\) with C in 1, 3, 4"),
        (torch.rand(1, 1, 4, 4), r"\(C, H, W\) with C in 1, 3, 4"),
        (torch.rand(3, 0, 4), r"\(C, H, W\)"),
        (torch.rand(3, 4, 4) * 2, r"must lie in \[0, 1\]; got values in \[.*, .*\]"),
        (torch.full((1, 2, 2), float("nan")), r"must lie in \[0, 1\]"),
        (torch.randint(0, 4, (1, 3, 3)), "uint8 or floating point"),
    ],
)
def test_images_that_cannot_be_shown_are_refused_with_their_shape(image, message):
    with pytest.raises(ValueError, match=message):
        view_item(image)


def test_files_pil_images_arrays_text_and_views(tmp_path):
    path = tmp_path / "cat.png"
    Image.fromarray(np.full((4, 5, 3), 200, np.uint8)).save(path)
    for given in (path, str(path)):
        view = view_item(given)
        assert view == ItemView("image", path.read_bytes(), "image/png")
    assert view_item(Image.open(path)).kind == "image"
    rgba = np.random.default_rng(0).integers(0, 256, (3, 4, 4), dtype=np.uint8)
    np.testing.assert_array_equal(decoded(view_item(Image.fromarray(rgba, "RGBA")).content), rgba)
    np.testing.assert_array_equal(decoded(view_item(Image.open(path).convert("L")).content), np.full((4, 5, 3), 200))
    np.testing.assert_array_equal(decoded(view_item(np.zeros((1, 2, 2), np.uint8)).content), np.zeros((2, 2)))
    assert view_item("a review: great film") == ItemView("text", "a review: great film", "text/plain")
    assert view_item(str(tmp_path / "missing.png")).kind == "text"  # a str names a file only when it exists
    shown = ItemView("text", "as given", "text/plain")
    assert view_item(object(), render=lambda item: shown) is shown


def test_render_hook_shows_any_item():
    tokens = {"input_ids": [5, 6]}
    view = view_item(tokens, render=lambda item: " ".join(f"tok{t}" for t in item["input_ids"]))
    assert view == ItemView("text", "tok5 tok6", "text/plain")
    with pytest.raises(TypeError, match="cannot show an item of type dict.*pass render="):
        view_item(tokens)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        view_item(pathlib.Path("/nonexistent/x.png"))
    with pytest.raises(ValueError, match="not an image"):
        view_item(pathlib.Path(__file__))


def test_data_url_and_rescaled():
    view = view_item(torch.zeros(1, 2, 2, dtype=torch.uint8))
    prefix, encoded = view.data_url().split(",", 1)
    assert prefix == "data:image/png;base64" and base64.b64decode(encoded) == view.content
    with pytest.raises(ValueError, match="only an image item"):
        ItemView("text", "x", "text/plain").data_url()
    normalised = torch.tensor([[[-2.0, 0.0], [2.0, 1.0]]])
    assert rescaled(normalised).tolist() == [[[0.0, 0.5], [1.0, 0.75]]]
    assert rescaled(torch.ones(1, 2, 2)).sum() == 0
    with pytest.raises(TypeError, match="floating-point image tensors"):
        rescaled(torch.zeros(1, 2, 2, dtype=torch.uint8))
