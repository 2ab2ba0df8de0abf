"""Pure helpers that pull photos out of package files, for tools/build_scenery_set.py.

* rcc_entries: the files inside a Qt binary resource archive (.rcc, format versions 1-3).
* jpeg_spans / largest_jpeg: JPEG streams embedded in any blob (e.g. Enlightenment .edj).
* read_exr / tone_map_hdr: an OpenEXR panorama to 8-bit RGB (Reinhard + gamma).
* dhash / hamming / is_near_duplicate: a 256-bit perceptual difference hash for dedupe.

Needs only the standard library, numpy and Pillow; read_exr also needs the optional
OpenEXR module (pip install OpenEXR), because Blender's EXRs are DWAB-compressed.
"""
import io
import shutil
import struct
import subprocess
import zlib

import numpy as np
from PIL import Image

RCC_COMPRESSED, RCC_DIRECTORY, RCC_COMPRESSED_ZSTD = 0x01, 0x02, 0x04


def _zstd_decompress(blob):
    try:
        import zstandard  # optional
        return zstandard.ZstdDecompressor().decompressobj().decompress(blob)
    except ImportError:
        if shutil.which("zstd") is None:
            raise RuntimeError("zstd-compressed rcc entry: needs the zstandard module or zstd")
        return subprocess.run(["zstd", "-dc"], input=blob, capture_output=True,
                              check=True).stdout


def rcc_entries(blob):
    """Yield (path, bytes) for every file in a Qt .rcc resource archive, tree order.

    Layout (qtbase src/corelib/io/qresource.cpp and src/tools/rcc): b'qres', then
    big-endian u32 version, tree offset, data offset, names offset (+ u32 flags from
    version 3).  A tree node is: name offset u32, flags u16, then for a directory the
    child count u32 and the index of its first child u32, for a file country u16,
    language u16 and data offset u32; version >= 2 appends a u64 modification time.
    Node 0 is the root directory.  A name is u16 length (UTF-16 units), u32 hash and
    UTF-16BE text.  A data entry is a u32 length and the bytes: zlib entries start with
    the u32 uncompressed size (qCompress), zstd entries are a plain zstd frame.
    """
    if blob[:4] != b"qres":
        raise ValueError("not a Qt rcc file (no 'qres' magic)")
    version, tree, data, names = struct.unpack(">4I", blob[4:20])
    if version not in (1, 2, 3):
        raise ValueError(f"unsupported rcc version {version}")
    node_size = 14 if version == 1 else 22

    def name(node):
        off = names + struct.unpack_from(">I", blob, tree + node * node_size)[0]
        n = struct.unpack_from(">H", blob, off)[0]
        return blob[off + 6: off + 6 + 2 * n].decode("utf-16-be")

    stack = [(0, "")]  # depth-first, children in stored order
    while stack:
        node, path = stack.pop()
        base = tree + node * node_size
        flags = struct.unpack_from(">H", blob, base + 4)[0]
        if flags & RCC_DIRECTORY:
            count, first = struct.unpack_from(">II", blob, base + 6)
            if first <= node or tree + (first + count) * node_size > len(blob):
                raise ValueError("corrupt rcc tree")
            stack.extend((c, f"{path}/{name(c)}") for c in reversed(range(first, first + count)))
            continue
        off = data + struct.unpack_from(">I", blob, base + 10)[0]
        size = struct.unpack_from(">I", blob, off)[0]
        payload = blob[off + 4: off + 4 + size]
        if flags & RCC_COMPRESSED:
            payload = zlib.decompress(payload[4:])
        elif flags & RCC_COMPRESSED_ZSTD:
            payload = _zstd_decompress(payload)
        yield path, payload


def jpeg_spans(blob):
    """(start, end) of each structurally complete JPEG stream (SOI ... EOI) in blob.

    From every SOI (FF D8 FF) the marker segments are followed by their lengths; after
    each SOS the entropy-coded data is skipped up to the next marker that is not a
    stuffed 00, a fill FF or a restart marker.  A stream that breaks this structure
    (truncated, or a new SOI before its EOI) is dropped and the scan resumes after it.
    """
    spans, pos = [], 0
    while True:
        start = blob.find(b"\xff\xd8\xff", pos)
        if start < 0:
            return spans
        end = _jpeg_end(blob, start)
        if end is None:
            pos = start + 2
        else:
            spans.append((start, end))
            pos = end


def _jpeg_end(blob, start):
    i, n = start + 2, len(blob)
    while i + 4 <= n:
        if blob[i] != 0xFF:
            return None
        marker = blob[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
        elif marker == 0xD9:  # EOI
            return i + 2
        elif marker == 0xD8:  # SOI inside a stream: this one was truncated
            return None
        elif 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            i += 2
        else:
            seg_len = struct.unpack_from(">H", blob, i + 2)[0]
            if seg_len < 2:
                return None
            i += 2 + seg_len
            if marker == 0xDA:  # start of scan: skip the entropy-coded data
                while True:
                    i = blob.find(b"\xff", i)
                    if i < 0 or i + 1 >= n:
                        return None
                    nxt = blob[i + 1]
                    if nxt == 0x00 or 0xD0 <= nxt <= 0xD7:
                        i += 2
                    elif nxt == 0xFF:
                        i += 1
                    else:
                        break
    return None


def largest_jpeg(blob):
    """Bytes of the largest (in pixels) embedded JPEG that Pillow fully decodes, or None."""
    sized = []
    for s, e in jpeg_spans(blob):
        try:
            with Image.open(io.BytesIO(blob[s:e])) as im:
                sized.append((im.width * im.height, -s, s, e))
        except Exception:
            continue
    for _, _, s, e in sorted(sized, reverse=True):  # biggest first; ties: earliest
        try:
            with Image.open(io.BytesIO(blob[s:e])) as im:
                im.load()
            return blob[s:e]
        except Exception:
            continue
    return None


def read_exr(path):
    """Linear float32 (H, W, 3) RGB of an OpenEXR file (needs the OpenEXR module)."""
    import OpenEXR  # optional dependency: Blender's studio lights are DWAB-compressed
    with OpenEXR.File(str(path)) as f:
        ch = f.channels()
        if "RGB" in ch:
            rgb = ch["RGB"].pixels
        elif "RGBA" in ch:
            rgb = ch["RGBA"].pixels[..., :3]
        else:
            rgb = np.stack([ch[c].pixels for c in "RGB"], -1)
    return np.asarray(rgb, np.float32)


def tone_map_hdr(rgb, key=0.18, gamma=2.2):
    """Linear HDR RGB (H, W, 3) -> uint8 RGB in [0, 255] (global Reinhard, then gamma).

    The image is scaled so that its log-average luminance maps to `key`, colours are
    divided by (1 + scaled luminance), clipped to [0, 1] and gamma-encoded.
    Negative and non-finite input values count as 0.
    """
    rgb = np.clip(np.nan_to_num(np.asarray(rgb, np.float64), nan=0.0, posinf=0.0,
                                neginf=0.0), 0, None)
    lum = rgb @ np.array([0.2126, 0.7152, 0.0722])
    scale = key / max(float(np.exp(np.mean(np.log(lum + 1e-6)))), 1e-6)
    mapped = rgb * scale / (1.0 + lum[..., None] * scale)
    return (np.clip(mapped, 0, 1) ** (1.0 / gamma) * 255 + 0.5).astype(np.uint8)


def dhash(im, size=16):
    """size*size-bit difference hash of a PIL image (int): sign of horizontal gradients
    of the grey image shrunk to (size+1) x size.  Robust to rescaling and recompression."""
    g = np.asarray(im.convert("L").resize((size + 1, size), Image.LANCZOS), np.int16)
    return int("".join("1" if b else "0" for b in (g[:, 1:] > g[:, :-1]).ravel()), 2)


def hamming(a, b):
    return bin(a ^ b).count("1")


def is_near_duplicate(h, seen, max_dist=20):
    """True when hash h is within max_dist bits of any hash in seen."""
    return any(hamming(h, s) <= max_dist for s in seen)
