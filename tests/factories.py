from __future__ import annotations

import hashlib
import io
import secrets

import factory
import numpy as np
from django.core.files.base import ContentFile
from PIL import Image

from raters.models import Rater, Rating, Session, Trial
from studies.models import ImageAsset, Method, Output, Scene, Study
from studies.scales import ScalePreset, levels_for


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def noise_image(width: int = 32, height: int = 24, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


class StudyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Study

    title = factory.Sequence(lambda n: f"Study {n}")
    slug = factory.Sequence(lambda n: f"study-{n}")
    scale_preset = ScalePreset.AIM5
    scale_levels = factory.LazyAttribute(lambda o: levels_for(o.scale_preset))


class ImageAssetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ImageAsset

    class Params:
        seed = 0

    width = 32
    height = 24
    token = factory.LazyFunction(lambda: secrets.token_urlsafe(24))
    content_type = "image/png"

    @factory.lazy_attribute
    def original(self):
        data = png_bytes(noise_image(self.width, self.height, self.seed))
        sha = hashlib.sha256(data).hexdigest()
        return ContentFile(data, name=f"images/{sha[:2]}/{sha}.png")

    @factory.lazy_attribute
    def file(self):
        """The rater copy, made as the importer makes it."""
        from studies.imaging import rater_copy_bytes, rater_copy_name

        self.original.seek(0)
        data = rater_copy_bytes(io.BytesIO(self.original.read()))
        return ContentFile(data, name=rater_copy_name(hashlib.sha256(data).hexdigest()))

    @factory.lazy_attribute
    def sha256(self):
        self.original.seek(0)
        return hashlib.sha256(self.original.read()).hexdigest()

    size_bytes = factory.LazyAttribute(lambda o: o.original.size)


class SceneFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Scene

    study = factory.SubFactory(StudyFactory)
    name = factory.Sequence(lambda n: f"scene{n:03d}")
    reference = factory.SubFactory(ImageAssetFactory)
    width = 32
    height = 24


class MethodFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Method

    study = factory.SubFactory(StudyFactory)
    name = factory.Sequence(lambda n: f"team-{n}")
    kind = Method.Kind.SUBMISSION


class OutputFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Output

    method = factory.SubFactory(MethodFactory)
    scene = factory.SubFactory(SceneFactory, study=factory.SelfAttribute("..method.study"))
    image = factory.SubFactory(ImageAssetFactory)


class RaterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Rater

    platform = Rater.Platform.PROLIFIC
    external_id = factory.Sequence(lambda n: f"rater{n}")


class SessionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Session

    rater = factory.SubFactory(RaterFactory)
    study = factory.SubFactory(StudyFactory)
    token = factory.LazyFunction(lambda: secrets.token_urlsafe(32))
    status = Session.Status.RATING


class TrialFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Trial

    session = factory.SubFactory(SessionFactory)
    output = factory.SubFactory(OutputFactory, method__study=factory.SelfAttribute("...session.study"))
    position = factory.Sequence(lambda n: n)
    kind = Trial.Kind.RATING
    token = factory.LazyFunction(lambda: secrets.token_urlsafe(24))


class RatingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Rating

    trial = factory.SubFactory(TrialFactory)
    score = 4
    response_ms = 1500
