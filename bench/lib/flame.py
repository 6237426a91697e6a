#!/usr/bin/env python3
"""Flame graphs from `perf script` output, for bench/profile (python3 standard library only).

`perf report` lists hot symbols but hides *why* they are hot; a flame graph shows whole call
paths at once. This reads the text of `perf script` from a recording made with call graphs
(`perf record -g` or `--call-graph dwarf`), folds every sample's stack into one line, root
first (`comm;caller;...;leaf COUNT`, the root being the thread's command name so that
`rnfsd-fs` threads and tokio workers stay apart), and draws an SVG: one box per frame, as wide
as its share of the samples, callers below callees. Offsets (`+0x1f`) and `(dso)` parts are
dropped; kernel frames get a `_[k]` suffix; a frame with no symbol is shown as `[dso]` or
`[unknown]`. Frames narrower than --min-width percent of all samples are left out (their
samples still count in their callers). Colours: kernel frames blue, user frames warm, unknown
grey, threads green; the shade comes from a hash of the name, so it is the same in every graph.
Static SVG: hover a box for its tooltip (function, samples, percentage).

Usage: perf script -i perf.data | flame.py --svg out.svg [--folded out.folded] [--title TEXT]
"""
import argparse, colorsys, re, sys, zlib
from collections import Counter
from xml.sax.saxutils import escape

# Sample header, e.g. "rnfsd-fs 1234/1240 [001] 567.890123: 500000 cpu-clock: ..."; comm may
# contain spaces, so it is everything before the pid (and the optional cpu) and the time stamp.
HEADER = re.compile(r'^(.*?)\s+\d+(?:/\d+)?\s+(?:\[\d+\]\s+)?\d+\.\d+:\s*(?:\d+\s+)?\S+:\s*(.*)$')
# Stack line, e.g. "    ffffffff8123 vfs_fstatat+0x1f ([kernel.kallsyms])"; the dso is the last (...).
FRAME = re.compile(r'^\s*([0-9a-fA-F]+)\s+(.*?)\s*\(([^()]*)\)\s*$')
OFFSET = re.compile(r'\+0x[0-9a-fA-F]+$')
BAD = re.compile(r'[\x00-\x08\x0b\x0c\x0e-\x1f;]')  # not allowed in XML, or the folded separator


def frame_name(addr, sym, dso):
    kernel = dso.startswith('[kernel.') or (  # also modules and kernel inlines
        len(addr) == 16 and addr.lower().startswith('ffff') and addr.lower() != 'f' * 16)
    sym = BAD.sub('_', OFFSET.sub('', sym.strip()))
    if not sym or sym == '[unknown]':
        base = dso.rsplit('/', 1)[-1]
        return f'[{base}]' if base and base not in ('unknown', '[unknown]') else '[unknown]'
    return sym + '_[k]' if kernel else sym


def fold(lines):
    """perf script lines -> Counter of 'root;...;leaf' stacks."""
    stacks, comm, frames = Counter(), None, []

    def flush():
        if comm is not None:
            stacks[';'.join([comm] + frames[::-1])] += 1

    for line in lines:
        line = line.rstrip('\n')
        if not line.strip() or line.startswith('#'):
            continue
        if not line[0].isspace():          # a new sample
            flush()
            m = HEADER.match(line)
            comm = BAD.sub('_', (m.group(1) if m else line.split()[0]).strip()) or '[unknown]'
            frames = []
            tail = FRAME.match(m.group(2)) if m and m.group(2) else None
            if tail:                       # recorded without a call graph: ip/sym on the header
                frames.append(frame_name(*tail.groups()))
        elif comm is not None:
            m = FRAME.match(line)
            if m:
                frames.append(frame_name(*m.groups()))
    flush()
    return stacks


def colour(name, depth):
    h = zlib.crc32(name.encode())
    if depth == 0:
        hue, sat, light = 0.30, 0.35, 0.62                      # thread (comm)
    elif name.endswith('_[k]'):
        hue, sat, light = 0.53 + (h % 100) / 1000, 0.55, 0.62 + (h >> 8) % 10 / 100
    elif name.startswith('['):
        hue, sat, light = 0.0, 0.0, 0.70 + (h % 10) / 100
    else:
        hue, sat, light = (h % 140) / 1000, 0.80, 0.55 + (h >> 8) % 12 / 100
    r, g, b = colorsys.hls_to_rgb(hue, light, sat)
    return f'rgb({int(r * 255)},{int(g * 255)},{int(b * 255)})'


def tree(stacks):
    """Counter of stacks -> nested [count, {name: child}] (iterative, so any depth is fine)."""
    root = [0, {}]
    for stack, n in stacks.items():
        node = root
        node[0] += n
        for name in stack.split(';'):
            node = node[1].setdefault(name, [0, {}])
            node[0] += n
    return root


def svg(stacks, title, min_pct, width=1200, fh=16, font=11):
    q = lambda s: escape(s, {'"': '&quot;'})
    total = sum(stacks.values())
    pad, top = 10, 56
    head = [f'<text x="{width / 2}" y="24" class="t">{q(title)}</text>']
    if not total:
        h = top + 40
        body = [f'<text x="{width / 2}" y="{top + 16}" class="t">no samples</text>']
    else:
        scale, min_n = (width - 2 * pad) / total, total * min_pct / 100
        boxes, depth_max, todo = [], 0, [(tree(stacks), pad, -1, None)]
        while todo:                        # (node, x, depth, name): lay out without recursion
            (count, kids), x, depth, name = todo.pop()
            if name is not None:
                boxes.append((name, x, depth, count))
                depth_max = max(depth_max, depth)
            for kid in sorted(kids):
                if kids[kid][0] >= min_n:
                    todo.append((kids[kid], x, depth + 1, kid))
                x += kids[kid][0] * scale
        h = top + (depth_max + 1) * fh + 30
        head.append(f'<text x="{pad}" y="44" class="s">{total} samples; frames under {min_pct:g}% '
                    f'omitted; blue: kernel, warm: user, grey: unknown, green: thread</text>')
        body = []
        for name, x, depth, count in boxes:
            w, y = count * scale, h - 30 - (depth + 1) * fh
            label, fit = '', int((w - 6) / (font * 0.6))
            if fit >= 3:
                label = name if len(name) <= fit else name[:fit - 2] + '..'
            body.append(f'<g><title>{q(name)} ({count} sample{"s"[count == 1:]}, {100 * count / total:.2f}%)</title>'
                        f'<rect x="{x:.2f}" y="{y}" width="{w:.2f}" height="{fh - 1}" rx="2" '
                        f'fill="{colour(name, depth)}"/>'
                        + (f'<text x="{x + 3:.2f}" y="{y + fh - 4}">{q(label)}</text>' if label else '')
                        + '</g>')
    return '\n'.join([
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>',
        f'<svg version="1.1" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" '
        f'viewBox="0 0 {width} {h}">',
        '<style>text{font-family:monospace;font-size:%dpx;fill:#000}' % font
        + ' .t{font-size:17px;text-anchor:middle} .s{fill:#555}'
        + ' g:hover rect{stroke:#000;stroke-width:0.5}</style>',
        f'<rect x="0" y="0" width="{width}" height="{h}" fill="#f8f8f4"/>',
        *head, *body, '</svg>', ''])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('input', nargs='?', help='perf script output (default: stdin)')
    ap.add_argument('--svg', help='write the flame graph here')
    ap.add_argument('--folded', help='write the folded stacks here')
    ap.add_argument('--title', default='Flame graph')
    ap.add_argument('--min-width', type=float, default=0.1, metavar='PCT',
                    help='leave out frames under PCT percent of all samples (default 0.1)')
    a = ap.parse_args()
    src = open(a.input, encoding='utf-8', errors='replace') if a.input else \
        open(sys.stdin.fileno(), encoding='utf-8', errors='replace', closefd=False)
    with src:
        stacks = fold(src)
    if a.folded:
        with open(a.folded, 'w') as f:
            f.writelines(f'{s} {n}\n' for s, n in sorted(stacks.items()))
    if a.svg:
        with open(a.svg, 'w') as f:
            f.write(svg(stacks, a.title, a.min_width))
    print(f'flame.py: {sum(stacks.values())} samples, {len(stacks)} distinct stacks',
          file=sys.stderr)


if __name__ == '__main__':
    main()
