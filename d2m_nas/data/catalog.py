"""What d2m-nas knows about each named dataset before reading it: normalisation and class names.

The mean/std are the per-channel constants of the dataset-condensation code (DC/DSA/DM), on the
[0, 1] scale, so results stay comparable with the published tables. Class names are in label
order and are the same whichever file format the images come from.
"""

from __future__ import annotations

from dataclasses import dataclass

_DIGITS = [str(d) for d in range(10)]

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

# The 100 fine labels, in label order (alphabetical), as in CIFAR-100's meta file.
CIFAR100_CLASSES = """
apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel
can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur
dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion
lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree
pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea
seal shark shrew skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table
tank telephone television tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman
worm
""".split()

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot"]


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...] = ()  # empty: read from the files (tinyimagenet's wnids)
    num_classes: int = 0

    def __post_init__(self) -> None:
        if self.class_names and not self.num_classes:
            object.__setattr__(self, "num_classes", len(self.class_names))


CATALOG: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("cifar10", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), tuple(CIFAR10_CLASSES)),
        DatasetInfo("cifar100", (0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762), tuple(CIFAR100_CLASSES)),
        DatasetInfo("svhn", (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), tuple(_DIGITS)),
        DatasetInfo("mnist", (0.1307,), (0.3081,), tuple(_DIGITS)),
        DatasetInfo("fashion-mnist", (0.2861,), (0.3530,), tuple(FASHION_MNIST_CLASSES)),
        DatasetInfo("tinyimagenet", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), num_classes=200),
    )
}
