#!/usr/bin/env python3
"""Decode a *fresh* rvmfs image (made by mkfs.rvmfs, never mounted) using only the field tables
of docs/format.md (offsets, sizes and types are read from the tables themselves), and check
every decoded value against the layout rules of format.md section 1 and the CRCs.

Made with the default -N and log size (any size), or with -J device=LOG (the external log is
found by the path the image records). Usage: python3 docs/check-format.py IMAGE
(exit status 0: the document matches the image; a failed assertion names the first mismatch)
"""
import mmap, os, struct, sys
doc = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'format.md')).read()
# mapped, not read: only the pages decoded are touched, so a 20 GiB sparse image costs nothing
img = mmap.mmap(os.open(sys.argv[1], os.O_RDONLY), 0, prot=mmap.PROT_READ)
def table(heading):
    sec = doc[doc.index(heading):].split('| offset | size | type | field | meaning |', 1)[1]
    rows = []
    for line in sec.splitlines()[2:]:
        if not line.startswith('|'): break
        c = [x.strip() for x in line.strip('|').split('|')]
        rows.append((int(c[0], 16), int(c[1]), c[2], c[3].strip('`')))
    return rows
FMT = {('u64', 8): '<Q', ('i64', 8): '<q', ('u32', 4): '<I', ('u16', 2): '<H'}
def decode(name, rows, base, total, src=None):
    src = img if src is None else src
    at, out = 0, {}
    print(f'== {name} at image offset {base:#x}')
    for off, size, typ, field in rows:
        assert off == at, (name, field, off, at)   # each table is contiguous
        at = off + size
        raw = src[base + off: base + off + size]
        if (typ, size) in FMT: v = struct.unpack(FMT[(typ, size)], raw)[0]
        elif typ.startswith('u64 ×'): v = list(struct.unpack(f'<{size//8}Q', raw))
        else: v = raw.hex()
        out[field] = v
        print(f'  {off:#06x} {field:18} {hex(v) if isinstance(v, int) else v}')
    assert at == total, (name, at, total)
    return out
H = decode('header', table('# 2. Header'), 0, 0x90)
E = decode('error record', table('## 2.1 Error record'), 0x100, 256)
assert not any(img[0x100:0x200]), 'a fresh image records no error'
S = decode('superblock', table('## 5.1 Superblock'), H['segment_offset'], 0x2b0)
ino = 1
I = decode('root inode', table('## 5.3 Inode'), H['segment_offset'] + S['inode_table'] + (ino - 1) * 128, 128)
# The geometry of section 1, recomputed from the image size alone.
size = len(img); ru = lambda v, t: -(-v // t) * t
ext = bool(H['incompat'] & 2)   # external_log: the image keeps a 1 MiB unused log area
inodes = max(16, min(size // 16384, 1 << 32)); log_len = ru(max(4 << 20, min(size // 32, 256 << 20)), 4096)
if ext: log_len = 1 << 20
ib = 4096; it = ib + ru(-(-inodes // 8), 4096); db = it + ru(inodes * 128, 4096)
cap = max(size // 4096, min(size // 4096 * 8, 1 << 32))   # room for resize (section 1.1)
ct = db + ru(-(-cap // 8), 4096); hs = ct + ru(cap * 4, 4096); he = hs + max(ru(inodes * 1024, 4096), 1 << 20)
sl = he + 4096   # the backup superblock's 4 KiB end the region (section 5.6)
so = 4096 + log_len; do = so + sl
want = dict(log_offset=4096, log_len=log_len, segment_offset=so, segment_len=sl, data_offset=do,
            data_blocks=(size - do) // 4096, version=2, block_size=4096)
for k, v in want.items(): assert H[k] == v, (k, H[k], v)
for k, v in dict(inode_count=inodes, inode_bitmap=ib, inode_table=it, data_bitmap=db, csum_table=ct, heap_start=hs,
                 heap_end=he, heap_top=hs, data_blocks=H['data_blocks'], inodes_used=1,
                 next_generation=2, last_check=H['created'], version=2, mounted=0,
                 reserved_blocks=0, commit_interval=0, errors=0, data_blocks_max=cap).items():
    assert S[k] == v, (k, S[k], v)
assert bytes.fromhex(H['magic']) == b'RVMFS\0\x01\x00' and S['magic'] == int.from_bytes(b'RVMFSSB1', 'little')
assert I['mode'] == 0o40755 and I['nlink'] == 2 and I['parent_or_target'] == 1 and I['generation'] == 1
def crc32c(data, crc=0):
    crc ^= 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8): crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xffffffff
assert crc32c(img[:0x78]) == H['crc'] and crc32c(img[0x80:0x8C]) == H['features_crc']
for w in ('compat', 'ro_compat', 'incompat'): assert S[w] == H[w], (w, S[w], H[w])
assert H['incompat'] & ~0x1F == 0 and H['incompat'] & 0x14 == 0x14 and H['ro_compat'] == 1 and H['compat'] == 1  # section 9's bits; mkfs sets deferred_ranges, slotted_leaves, data_csum, backup_sb
# section 5.6: the backup superblock is a byte-for-byte copy of the primary's 0x2b0 bytes
sb = H['segment_offset']; bk = sb + H['segment_len'] - 4096
assert img[bk:bk + 0x2b0] == img[sb:sb + 0x2b0] and not any(img[bk + 0x2b0:bk + 4096]), 'backup superblock'
assert (S['hash_key'] != '00' * 16) == bool(H['incompat'] & 1)   # keyed_hash has a key
assert S['label'] == '00' * 32 and S['mount_opts'] == '00' * 64   # made without -L; no defaults stored
log, log_offset, log_len = img, H['log_offset'], H['log_len']
if ext:   # sections 2.2 and 3.5: the binding, then the log device's header
    B = decode('external log binding', table('## 2.2 External log binding'), 0x200, 512)
    assert bytes.fromhex(B['magic']) == b'RVMFSXLB' and crc32c(img[0x200:0x3F8]) == B['crc']
    path = bytes.fromhex(B['path']).rstrip(b'\0').decode()
    assert path.startswith('/') and not any(img[0x400:0x1000]), path
    assert not any(img[H['log_offset']:H['log_offset'] + H['log_len']]), 'the in-image log area is unused'
    log = mmap.mmap(os.open(path, os.O_RDONLY), 0, prot=mmap.PROT_READ)
    L = decode(f'log header of {path}', table('## 3.5 External log device'), 0, 0x50, log)
    assert bytes.fromhex(L['magic']) == b'RVMFSLOG' and L['version'] == 1 and L['block_size'] == 4096
    assert L['image_uuid'] == H['uuid'] and L['log_uuid'] == B['log_uuid'] and crc32c(log[:0x48]) == L['crc']
    assert L['log_offset'] == 4096 and L['log_len'] == (len(log) - 4096) // 4096 * 4096
    log_offset, log_len = L['log_offset'], L['log_len']
for copy in (0, 1):
    base = log_offset + copy * 4096
    st = decode(f'status copy {copy}', table('## 3.1 Status block'), base, 52, log)
    assert st['generation'] % 2 == copy and st['capacity'] == log_len - 8192
    assert crc32c(log[base:base + 0x30]) == st['crc']
pos = 0
while True:
    base = log_offset + 8192 + pos
    r = decode(f'record at position {pos}', table('## 3.3 Redo record'), base, 40, log)
    if r['magic'] != 0x524d5652: break
    rec = log[base:base + r['total_len']]
    assert crc32c(rec[0x24:], crc32c(rec[:0x20])) == r['crc']
    pos += r['total_len']
print(f'ok: header, superblock and its backup, root inode, status copies and {pos} bytes of log records match docs/format.md')
