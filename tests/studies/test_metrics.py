from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from studies.metrics import compute_metrics, load_pixels
from studies.models import Output
from studies.services import output_metrics_compute, study_create, study_import
from tests.studies.conftest import make_study_folder, write_png

pytestmark = pytest.mark.django_db


def test_metric_values_match_a_direct_scikit_image_call(tmp_path):
    folder = make_study_folder(tmp_path / "s", scenes=("beach",), methods=("TeamAlpha",), size=(64, 48))
    study_import(study=study_create(title="M", slug="m"), source=folder)
    output = Output.objects.select_related("image", "scene__reference").get()
    output_metrics_compute(output=output)

    reference = np.asarray(Image.open(folder / "references" / "beach.png"))
    result = np.asarray(Image.open(folder / "methods" / "TeamAlpha" / "beach.png"))
    expected_ssim = structural_similarity(
        reference,
        result,
        channel_axis=2,
        data_range=255,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    expected_psnr = peak_signal_noise_ratio(reference, result, data_range=255)
    output.refresh_from_db()
    assert output.metric_status == Output.MetricStatus.DONE
    assert output.psnr == pytest.approx(expected_psnr, abs=1e-9)
    assert output.ssim == pytest.approx(expected_ssim, abs=1e-9)
    assert output.metric_settings["sigma"] == 1.5
    assert output.metric_settings["use_sample_covariance"] is False
    assert output.metric_settings["data_range"] == 255
    assert output.metric_settings["library_version"]


def test_psnr_by_hand_for_a_constant_offset():
    reference = np.full((16, 16, 3), 100, dtype=np.uint8)
    result = reference + 5
    psnr, ssim, _ = compute_metrics(reference, result)
    assert psnr == pytest.approx(10 * math.log10(255**2 / 25))
    assert 0 < ssim < 1


def test_sixteen_bit_images_use_their_own_data_range(tmp_path):
    reference = np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 60
    result = reference + 300
    ref_path, out_path = tmp_path / "r.png", tmp_path / "o.png"
    Image.fromarray(reference).save(ref_path)
    Image.fromarray(result).save(out_path)
    psnr, _, settings = compute_metrics(load_pixels(ref_path), load_pixels(out_path))
    assert settings["data_range"] == 65535
    assert psnr == pytest.approx(10 * math.log10(65535**2 / 300**2))


def test_identical_images_have_no_finite_psnr():
    image = np.random.default_rng(1).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    psnr, ssim, settings = compute_metrics(image, image.copy())
    assert psnr is None and ssim == pytest.approx(1.0) and settings["identical"] is True


def test_a_failed_metric_leaves_a_readable_error(tmp_path):
    folder = make_study_folder(tmp_path / "s", scenes=("beach",), methods=("TeamAlpha",))
    study_import(study=study_create(title="E", slug="e"), source=folder)
    output = Output.objects.select_related("image").get()
    Path(output.image.file.path).write_bytes(b"gone")  # storage corrupted after import
    output_metrics_compute(output=output)
    output.refresh_from_db()
    assert output.metric_status == Output.MetricStatus.FAILED
    assert output.metric_error
    assert output.psnr is None


def test_metric_task_runs_by_id_and_is_idempotent(tmp_path):
    from studies.tasks import output_metrics_compute as task

    folder = make_study_folder(tmp_path / "s", scenes=("beach",), methods=("TeamAlpha",))
    study_import(study=study_create(title="T", slug="t"), source=folder)
    output = Output.objects.get()
    task.delay(output.pk)
    output.refresh_from_db()
    first = (output.psnr, output.ssim)
    task.delay(output.pk)
    output.refresh_from_db()
    assert output.metric_status == "done" and (output.psnr, output.ssim) == first
    task.delay(10**9)  # an output deleted since it was queued is skipped quietly


def test_grey_and_colour_mismatch_is_a_readable_error(tmp_path):
    grey, colour = tmp_path / "g.png", tmp_path / "c.png"
    write_png(grey, np.zeros((8, 8), dtype=np.uint8))
    write_png(colour, np.zeros((8, 8, 3), dtype=np.uint8))
    from studies.metrics import MetricError

    with pytest.raises(MetricError, match="differs"):
        compute_metrics(load_pixels(grey), load_pixels(colour))


@pytest.mark.parametrize(
    ("shape", "dtype", "data_range"),
    [((97, 131, 3), np.uint8, 255), ((61, 45), np.uint8, 255), ((40, 52, 3), np.uint16, 65535)],
    ids=["rgb", "grey", "rgb16"],
)
@pytest.mark.parametrize("strip_pixels", [200, 1 << 21], ids=["many-strips", "one-strip"])
def test_metrics_in_strips_equal_scikit_image_on_the_whole_image(monkeypatch, shape, dtype, data_range, strip_pixels):
    from studies import metrics

    monkeypatch.setattr(metrics, "STRIP_PIXELS", strip_pixels)
    rng = np.random.default_rng(5)
    reference = rng.integers(0, data_range + 1, size=shape).astype(dtype)
    noise = rng.integers(-data_range // 10, data_range // 10, size=shape)
    output = np.clip(reference.astype(np.int64) + noise, 0, data_range).astype(dtype)
    psnr, ssim, _ = compute_metrics(reference, output)
    channel_axis = 2 if len(shape) == 3 else None
    expected_ssim = structural_similarity(
        reference,
        output,
        channel_axis=channel_axis,
        data_range=data_range,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    assert abs(ssim - expected_ssim) < 1e-12
    assert abs(psnr - peak_signal_noise_ratio(reference, output, data_range=data_range)) < 1e-9
