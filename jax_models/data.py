"""Datasets: reading labelled image folders and packing them into one compact file.

A data folder holds `labels.csv` (image_id, lesion_id, dx, malignant, ...,
split) and `images/<image_id>.jpg` (the layout the team's copies of HAM10000
and ISIC 2017 use). A parent folder holding several such folders is read as all
of them. A pack (`.npz`) stores every image once as `prepare_uint8` output at
a fixed canvas size, re-encoded as JPEG, so training needs neither the
original files nor a second decode path.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from jax_models.preprocess import prepare_uint8

CLASS_NAMES = ('akiec', 'bcc', 'bkl', 'df', 'mel', 'nv', 'vasc')
MALIGNANT_CLASSES = ('akiec', 'bcc', 'mel')
SPLITS = ('train', 'val', 'test')
# ISIC 2020 names its diagnoses in words; its 'unknown' are benign by follow-up or
# consensus, nearly all naevi (see its README), so they train as 'nv'.
DX_ALIASES = {'melanoma': 'mel', 'nevus': 'nv', 'seborrheic keratosis': 'bkl', 'lentigo NOS': 'bkl', 'unknown': 'nv'}


@dataclass
class Records:
    """Labels of a set of images; `images` is uint8 N x S x S x 3 once loaded."""

    image_id: np.ndarray
    lesion_id: np.ndarray
    source: np.ndarray
    split: np.ndarray
    label: np.ndarray
    malignant: np.ndarray
    images: np.ndarray | None = None
    paths: list[Path] | None = None

    def __len__(self):
        return len(self.label)

    def select(self, mask: np.ndarray) -> Records:
        idx = np.nonzero(mask)[0]
        return Records(
            image_id=self.image_id[idx],
            lesion_id=self.lesion_id[idx],
            source=self.source[idx],
            split=self.split[idx],
            label=self.label[idx],
            malignant=self.malignant[idx],
            images=None if self.images is None else self.images[idx],
            paths=None if self.paths is None else [self.paths[i] for i in idx],
        )

    def subset(self, source: str | None = None, split: str | None = None) -> Records:
        mask = np.ones(len(self), bool)
        if source is not None:
            mask &= self.source == source
        if split is not None:
            mask &= self.split == split
        return self.select(mask)


def source_dirs(data: str | Path) -> list[Path]:
    """The labelled folders at `data`: itself, or its children that have labels.csv."""
    data = Path(data)
    if (data / 'labels.csv').exists():
        return [data]
    found = sorted(p for p in data.iterdir() if (p / 'labels.csv').exists())
    if not found:
        raise FileNotFoundError(f'{data}: no labels.csv here or in its sub-folders')
    return found


def read_folder(folder: Path) -> Records:
    """Labels of one folder; paths point at its images.

    A folder without `lesion_id` (ISIC 2020) groups by `patient_id` instead: its
    splits and bootstrap resampling are by patient.
    """
    with open(folder / 'labels.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    index = {name: i for i, name in enumerate(CLASS_NAMES)}
    source = folder.name
    return Records(
        image_id=np.array([r['image_id'] for r in rows]),
        lesion_id=np.array([r.get('lesion_id') or r['patient_id'] for r in rows]),
        source=np.array([source] * len(rows)),
        split=np.array([r['split'] for r in rows]),
        label=np.array([index[DX_ALIASES.get(r['dx'], r['dx'])] for r in rows], np.int32),
        malignant=np.array([int(r['malignant']) for r in rows], np.int32),
        paths=[folder / 'images' / f"{r['image_id']}.jpg" for r in rows],
    )


def concat(parts: Sequence[Records]) -> Records:
    images = None
    if all(p.images is not None for p in parts):
        images = np.concatenate([p.images for p in parts])
    paths = None
    if all(p.paths is not None for p in parts):
        paths = [q for p in parts for q in p.paths]
    return Records(
        *(
            np.concatenate([getattr(p, k) for p in parts])
            for k in ('image_id', 'lesion_id', 'source', 'split', 'label', 'malignant')
        ),
        images=images,
        paths=paths,
    )


def read_labels(data: str | Path) -> Records:
    return concat([read_folder(d) for d in source_dirs(data)])


def load_images(records: Records, size: int) -> Records:
    """Decodes every image of a folder-backed record set through prepare_uint8."""
    out = np.empty((len(records), size, size, 3), np.uint8)
    for i, path in enumerate(records.paths):
        with Image.open(path) as im:
            out[i] = prepare_uint8(im, size)
    records.images = out
    return records


def pack(data_dirs: Iterable[str | Path], out: str | Path, canvas: int = 112, quality: int = 90) -> Path:
    """Writes every image of `data_dirs` as a canvas x canvas JPEG into one npz."""
    records = concat([read_labels(d) for d in data_dirs])
    blobs = []
    for path in records.paths:
        with Image.open(path) as im:
            pixels = prepare_uint8(im, canvas)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format='JPEG', quality=quality)
        blobs.append(np.frombuffer(buf.getvalue(), np.uint8))
    offsets = np.cumsum([0] + [len(b) for b in blobs])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        out,
        jpeg=np.concatenate(blobs),
        offsets=offsets,
        canvas=canvas,
        image_id=records.image_id,
        lesion_id=records.lesion_id,
        source=records.source,
        split=records.split,
        label=records.label,
        malignant=records.malignant,
    )
    return out


def load_pack(path: str | Path) -> Records:
    with np.load(path) as z:
        jpeg, offsets = z['jpeg'], z['offsets']
        canvas = int(z['canvas'])
        images = np.empty((len(offsets) - 1, canvas, canvas, 3), np.uint8)
        for i in range(len(images)):
            blob = jpeg[offsets[i] : offsets[i + 1]].tobytes()
            images[i] = np.asarray(Image.open(io.BytesIO(blob)).convert('RGB'))
        return Records(
            image_id=z['image_id'],
            lesion_id=z['lesion_id'],
            source=z['source'],
            split=z['split'],
            label=z['label'],
            malignant=z['malignant'],
            images=images,
        )


def load(data: str | Path, canvas: int) -> Records:
    """A pack file, or labelled folder(s) decoded at `canvas`."""
    data = Path(data)
    if data.suffix == '.npz':
        return load_pack(data)
    return load_images(read_labels(data), canvas)


def main(argv=None) -> int:
    """python -m jax_models.data OUT.npz DIR [DIR ...] [--canvas 112] [--quality 90]"""
    import argparse

    parser = argparse.ArgumentParser(description='Pack labelled image folders into one npz.')
    parser.add_argument('out')
    parser.add_argument('dirs', nargs='+', help='labelled folders (labels.csv + images/)')
    parser.add_argument('--canvas', type=int, default=112)
    parser.add_argument('--quality', type=int, default=90)
    args = parser.parse_args(argv)
    path = pack(args.dirs, args.out, args.canvas, args.quality)
    print(f'{path}: {path.stat().st_size / 1e6:.1f} MB')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())


def padded_batches(canvases: np.ndarray, batch: int):
    """(chunk, n) in fixed-size batches, the last one padded with zeros so that a jitted function
    sees one shape and never recompiles; n is how many rows are real."""
    for start in range(0, len(canvases), batch):
        chunk = canvases[start : start + batch]
        n = len(chunk)
        if n < batch:
            chunk = np.concatenate([chunk, np.zeros((batch - n,) + chunk.shape[1:], chunk.dtype)])
        yield chunk, n
