#!/usr/bin/env python3
"""Regenerates the Intel HEX fixtures in bad/ and good/ (run from this directory).

Each bad file holds exactly one mistake; tests/hex_bad_files.rs lists the line and the reason
expected for each. Checksums are computed here so that only the intended field is wrong.
"""


def rec(kind, offset, data, length=None, checksum_delta=0):
    length = len(data) if length is None else length
    body = bytes([length, offset >> 8, offset & 0xFF, kind]) + bytes(data)
    checksum = (-sum(body) + checksum_delta) & 0xFF
    return ":" + (body + bytes([checksum])).hex().upper()


DATA0 = rec(0, 0x0000, range(16))
DATA1 = rec(0, 0x0010, range(16, 32))
EOF_REC = ":00000001FF"


def lines(*records, ending="\n"):
    return ending.join(records) + ending


BAD = {
    "bad_checksum.hex": lines(DATA0, rec(0, 0x10, range(16), checksum_delta=1), EOF_REC),
    "bad_length.hex": lines(DATA0, rec(0, 0x10, range(15), length=16), EOF_REC),
    "unknown_type.hex": lines(DATA0, DATA1, rec(6, 0, []), EOF_REC),
    "wrong_length_for_type.hex": lines(rec(4, 0, [0, 1, 2]), DATA0, EOF_REC),
    "non_hex_char.hex": lines(DATA0, DATA1[:11] + "G" + DATA1[12:], EOF_REC),
    "odd_digits.hex": lines(DATA0, DATA1[:-1], EOF_REC),
    "too_short.hex": lines(DATA0, ":0000", EOF_REC),
    "no_colon.hex": lines(DATA0, "This is the bootloader for the Pro Micro.", EOF_REC),
    "html_page.hex": lines("<!DOCTYPE html>", "<html><body>Caterina-promicro16.hex</body></html>"),
    "missing_eof.hex": lines(DATA0, DATA1),
    "data_after_eof.hex": lines(DATA0, EOF_REC, "", rec(0, 0x7000, range(16)), EOF_REC),
    "overlap.hex": lines(DATA0, DATA1, rec(0, 0x0018, range(4)), EOF_REC),
    "crossing_64k.hex": lines(rec(4, 0, [0, 1]), rec(0, 0xFFF8, range(16)), EOF_REC),
    "past_4gib.hex": lines(rec(4, 0, [0xFF, 0xFF]), rec(0, 0xFFF8, range(16)), EOF_REC),
    "empty.hex": "",
    "blank_lines_only.hex": "\r\n  \n\n",
}

GOOD = {
    # CRLF endings, trailing spaces/tabs, blank lines, a byte-order mark, 03 and 05 records.
    "tolerant.hex": "\ufeff"
    + lines(
        rec(3, 0, [0, 0, 0x70, 0]) + "  ",
        "",
        DATA0 + "\t",
        rec(5, 0, [0, 0, 0x70, 0]),
        EOF_REC,
        "",
        ending="\r\n",
    ),
    # Type 02 base 0x1000 × 16 = 0x10000, a record running past 0x1FFFF (no wrap, like avrdude),
    # then type 04 base 0x20000.
    "segments.hex": lines(
        rec(2, 0, [0x10, 0x00]),
        rec(0, 0xFFF8, range(16)),
        rec(4, 0, [0x00, 0x03]),
        rec(0, 0x0100, [0xAA, 0xBB]),
        EOF_REC,
    ),
}

if __name__ == "__main__":
    for folder, files in (("bad", BAD), ("good", GOOD)):
        for name, text in files.items():
            with open(f"{folder}/{name}", "w", newline="") as f:
                f.write(text)
    # A binary file (a .bin renamed to .hex), and one that is not valid UTF-8.
    with open("bad/binary.hex", "wb") as f:
        f.write(bytes([0x0C, 0x94, 0x5C, 0x00, 0x0C, 0x94, 0x00, 0x00]))
    with open("bad/latin1.hex", "wb") as f:
        f.write((lines(DATA0) + "caf\xe9\n").encode("latin-1"))
