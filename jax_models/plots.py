"""Figures drawn with Pillow alone: ROC curves and reliability diagrams."""

from __future__ import annotations

from PIL import Image, ImageDraw

COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189)]
W, H, M = 520, 520, 60  # picture size and margin


def _axes(title: str, xlabel: str, ylabel: str):
    im = Image.new('RGB', (W, H), 'white')
    d = ImageDraw.Draw(im)
    x0, y0, x1, y1 = M, M // 2 + 10, W - 20, H - M
    d.rectangle([x0, y0, x1, y1], outline='black')
    for i in range(11):
        t = i / 10
        x = x0 + t * (x1 - x0)
        y = y1 - t * (y1 - y0)
        d.line([x, y1, x, y1 + 4], fill='black')
        d.line([x0 - 4, y, x0, y], fill='black')
        d.line([x, y0, x, y1], fill=(235, 235, 235))
        d.line([x0, y, x1, y], fill=(235, 235, 235))
        if i % 2 == 0:
            d.text((x - 8, y1 + 8), f'{t:.1f}', fill='black')
            d.text((x0 - 30, y - 6), f'{t:.1f}', fill='black')
    d.rectangle([x0, y0, x1, y1], outline='black')
    d.text((x0, 8), title, fill='black')
    d.text(((x0 + x1) // 2 - 3 * len(xlabel), H - 28), xlabel, fill='black')
    d.text((4, y0 - 18), ylabel, fill='black')

    def to_px(x, y):
        return x0 + x * (x1 - x0), y1 - y * (y1 - y0)

    return im, d, to_px


def roc_plot(curves: dict, title: str) -> Image.Image:
    """curves: label -> (false positive rates, true positive rates)."""
    im, d, px = _axes(title, 'false positive rate (1 - specificity)', 'sensitivity')
    d.line([px(0, 0), px(1, 1)], fill=(160, 160, 160))
    for i, (label, (fpr, tpr)) in enumerate(curves.items()):
        c = COLOURS[i % len(COLOURS)]
        d.line([px(float(a), float(b)) for a, b in zip(fpr, tpr, strict=True)], fill=c, width=2)
        lx, ly = px(0.35, 0.05 + 0.07 * i)
        d.line([lx, ly + 6, lx + 20, ly + 6], fill=c, width=3)
        d.text((lx + 26, ly), label, fill='black')
    return im


def reliability_plot(series: dict, title: str) -> Image.Image:
    """series: label -> [(mean predicted, observed frequency, count), ...] per bin."""
    im, d, px = _axes(title, 'predicted p_malignant', 'observed malignant fraction')
    d.line([px(0, 0), px(1, 1)], fill=(160, 160, 160))
    for i, (label, bins) in enumerate(series.items()):
        c = COLOURS[i % len(COLOURS)]
        pts = [(p, o, n) for p, o, n in bins if p is not None]
        if len(pts) > 1:
            d.line([px(p, o) for p, o, _ in pts], fill=c, width=2)
        for p, o, n in pts:
            x, y = px(p, o)
            r = 2 + min(n, 400) ** 0.5 / 4
            d.ellipse([x - r, y - r, x + r, y + r], outline=c, width=2)
        lx, ly = px(0.05, 0.93 - 0.07 * i)
        d.line([lx, ly + 6, lx + 20, ly + 6], fill=c, width=3)
        d.text((lx + 26, ly), label, fill='black')
    d.text((W // 2, H - M - 18), 'circle size ~ images in the bin', fill=(90, 90, 90))
    return im
