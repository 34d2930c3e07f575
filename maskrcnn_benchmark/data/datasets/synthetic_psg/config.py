"""Knobs of the synthetic PSG generator, with the reason for each default."""
from dataclasses import dataclass, field
from typing import Tuple


@dataclass(frozen=True)
class SyntheticPSGConfig:
    """Knobs of the synthetic PSG world.

    Defaults and why:
    - ``image_long_side=160``: small images, fast to render, to train the relation head on
      and to classify on a CPU.
    - ``val_fraction=0.2``, ``test_fraction=0.2``: val and test large enough that every one
      of the 56 relation types is planned in each once a split has 56 relation slots (the CE7454
      grader divides by every class's count).
    - ``min_rels=1``, ``max_rels=4``: about the relation density of PSG (5.6 per image) scaled down.
    - ``tail_steepness=1.0``: a long tail over the 56 predicates (head/tail weight ratio 56).
    - ``duplicate_prob``, ``second_predicate_prob``: PSG repeats some triplets and gives some
      pairs two predicates; the loader's dedup and one-predicate-per-pair rules need both.
    """

    image_long_side: int = field(default=160, metadata={"help": "longer image side in pixels (>= 64)"})
    aspect_ratios: Tuple[float, ...] = field(default=(0.75, 1.0), metadata={
        "help": "short/long side ratios to draw from; each image is landscape or portrait at random"})
    val_fraction: float = field(default=0.2, metadata={"help": "share of images in the CE7454 val split"})
    test_fraction: float = field(default=0.2, metadata={"help": "share of images in the CE7454 test split"})
    min_rels: int = field(default=1, metadata={"help": "fewest relations per image (>= 1)"})
    max_rels: int = field(default=4, metadata={"help": "most relations per image"})
    max_distractors: int = field(default=1, metadata={"help": "most unrelated thing segments per image"})
    tail_steepness: float = field(default=1.0, metadata={"help": "Zipf exponent of the predicate frequencies"})
    duplicate_prob: float = field(default=0.1, metadata={
        "help": "probability that an image repeats one of its triplets"})
    second_predicate_prob: float = field(default=0.2, metadata={
        "help": "probability that a non-positional relation's pair also gets its positional predicate"})
    pixel_noise_std: float = field(default=6.0, metadata={"help": "std of the Gaussian pixel noise"})
    jpeg_quality: int = field(default=90, metadata={"help": "JPEG quality, 1..100"})

    def validate(self) -> None:
        """Raise ValueError for knobs outside their ranges."""
        if self.image_long_side < 64:
            raise ValueError(f"image_long_side must be >= 64, got {self.image_long_side}")
        if not (0 <= self.val_fraction and 0 <= self.test_fraction and self.val_fraction + self.test_fraction < 1):
            raise ValueError("val_fraction and test_fraction must be >= 0 and leave some train images")
        if not 1 <= self.min_rels <= self.max_rels:
            raise ValueError(f"need 1 <= min_rels <= max_rels, got {self.min_rels}, {self.max_rels}")
        for name in ("duplicate_prob", "second_predicate_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1]")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")
