"""The knobs of the synthetic VG150-format generator, with their defaults and checks."""
import math
from dataclasses import dataclass, field
from typing import Tuple

from .world import MAX_COARSE_ONLY, MAX_GENUINE_COARSE

MAX_RELS_PER_IMAGE = 5
MAX_DISTRACTORS_PER_IMAGE = 3
BOX_SCALE = 1024
MAX_COORDINATE_STEP = 4


def coordinate_step(long_side: int) -> int:
    """Pixel grid that box corners snap to so that the 1024-scale boxes decode back exactly."""
    return long_side // math.gcd(long_side, BOX_SCALE)


@dataclass(frozen=True)
class SyntheticWorldConfig:
    """Knobs of the synthetic world; defaults make the HML setting of HML.md 8b testable.

    Defaults and why:
    - ``image_long_side=256``, ``aspect_ratios=(0.75, 1.0)``: 256x192, 192x256 and 256x256
      images, both aspect-ratio groups of the sampler, fast to render and to train on.
    - ``test_fraction=0.3``, ``num_val_fraction=0.1``: VG150-like split proportions.
    - ``min_rels=1``, ``max_rels=3``: the setting where the simulation was clearest.
    - ``max_distractors=1``: a few unrelated boxes so that pairs without a relation exist.
    - ``coarse_prob=0.6``: the simulation's clearest mixed-granularity setting (0.8 makes
      plain CE predict only parents, 0.4 lets plain CE win).
    - ``num_coarse_only=0``: every coarse predicate has fine children (clearest setting).
    - ``genuine_coarse_share=1.0``: every parent (on, has, near, of, in) also has a type whose
      true predicate is the parent itself, so the ideal model answers fine for fine types and
      coarse for coarse ones (HIERARCHY.md D). 0 gives back the world without genuine coarse
      relations: byte-identical dataset files to the generator before the knob existed.
    - ``tail_steepness=1.6``: Zipf exponent giving an annotated max/min predicate count
      ratio of 165-171 on 2,000 images and 63-67 on 300 (20 seeds; 97-106 and 65-69
      without genuine-coarse types); smaller sets come out flatter (about 42 on 200)
      because every type is kept at least once per split.
    - ``geometry_overlap=0.0``: fine siblings well separated by geometry.
    - ``pixel_noise_std=6.0``, ``jpeg_quality=90``: mildly noisy, realistic JPEGs.
    """

    image_long_side: int = field(default=256, metadata={
        "help": "longer image side in pixels; must share a factor with 1024 so boxes stay exact "
                "(e.g. 128, 256, 384, 512)"})
    aspect_ratios: Tuple[float, ...] = field(default=(0.75, 1.0), metadata={
        "help": "short/long side ratios to draw from; each image is landscape or portrait at random"})
    test_fraction: float = field(default=0.3, metadata={"help": "share of images in the test split"})
    num_val_fraction: float = field(default=0.1, metadata={
        "help": "share of train images (the first ones in h5 order) that form the val split, at least 1"})
    min_rels: int = field(default=1, metadata={"help": "fewest relations per image (>= 1)"})
    max_rels: int = field(default=3, metadata={
        "help": f"most relations per image (<= {MAX_RELS_PER_IMAGE})"})
    max_distractors: int = field(default=1, metadata={
        "help": f"most unrelated objects per image, 0..{MAX_DISTRACTORS_PER_IMAGE}"})
    coarse_prob: float = field(default=0.6, metadata={
        "help": "probability that a fine relation is annotated as its coarse parent, in [0, 1] (per split "
                "and fine type, round(p*n) of its n relations, chosen at random; one keeps the fine label if p < 1)"})
    num_coarse_only: int = field(default=0, metadata={
        "help": f"coarse predicates without fine children to add, 0..{MAX_COARSE_ONLY}"})
    genuine_coarse_share: float = field(default=1.0, metadata={
        "help": f"share of the {MAX_GENUINE_COARSE} parents with fine children (on, has, near, of, in, in this "
                "order) that also get a genuine-coarse relation type, whose true predicate is the parent itself and "
                "which is always annotated with it; the first round(share * "
                f"{MAX_GENUINE_COARSE}) parents get one, in [0, 1]; 0 = the world without genuine coarse relations"})
    tail_steepness: float = field(default=1.6, metadata={
        "help": "Zipf exponent of the relation-type frequencies (0 = uniform)"})
    geometry_overlap: float = field(default=0.0, metadata={
        "help": "how far fine siblings' layout ranges move toward their mean: 0 = as designed (well "
                "separated), 1 = one shared layout (only subject/object classes tell siblings apart)"})
    pixel_noise_std: float = field(default=6.0, metadata={"help": "std of the Gaussian pixel noise"})
    jpeg_quality: int = field(default=90, metadata={"help": "JPEG quality, 1..100"})

    @property
    def num_genuine_coarse(self) -> int:
        """How many parents get a genuine-coarse type: round(share * MAX_GENUINE_COARSE), halves up."""
        return int(math.floor(self.genuine_coarse_share * MAX_GENUINE_COARSE + 0.5))

    def validate(self) -> None:
        """Raise ValueError naming the first knob that is out of range."""
        step = coordinate_step(self.image_long_side)
        if self.image_long_side < 64 or step > MAX_COORDINATE_STEP:
            raise ValueError(f"image_long_side={self.image_long_side} must be >= 64 and share a factor "
                             f">= {self.image_long_side // MAX_COORDINATE_STEP} with 1024 (e.g. 128, 256, 384, 512)")
        if not self.aspect_ratios or any(not 0.25 <= ratio <= 1.0 for ratio in self.aspect_ratios):
            raise ValueError(f"aspect_ratios must be a non-empty list of values in [0.25, 1], got {self.aspect_ratios}")
        for name in ("test_fraction", "num_val_fraction"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not 1 <= self.min_rels <= MAX_RELS_PER_IMAGE:
            raise ValueError(f"min_rels must be in [1, {MAX_RELS_PER_IMAGE}], got {self.min_rels}")
        if not self.min_rels <= self.max_rels <= MAX_RELS_PER_IMAGE:
            raise ValueError(f"max_rels must be in [min_rels={self.min_rels}, {MAX_RELS_PER_IMAGE}], "
                             f"got {self.max_rels}")
        if not 0 <= self.max_distractors <= MAX_DISTRACTORS_PER_IMAGE:
            raise ValueError(f"max_distractors must be in [0, {MAX_DISTRACTORS_PER_IMAGE}], "
                             f"got {self.max_distractors}")
        for name in ("coarse_prob", "genuine_coarse_share", "geometry_overlap"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0 <= self.num_coarse_only <= MAX_COARSE_ONLY:
            raise ValueError(f"num_coarse_only must be in [0, {MAX_COARSE_ONLY}], got {self.num_coarse_only}")
        if self.tail_steepness < 0:
            raise ValueError(f"tail_steepness must be >= 0, got {self.tail_steepness}")
        if self.pixel_noise_std < 0:
            raise ValueError(f"pixel_noise_std must be >= 0, got {self.pixel_noise_std}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in [1, 100], got {self.jpeg_quality}")
