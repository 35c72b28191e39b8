"""Everything else in an HDF5 file: other groups, datasets and attributes, carried beside the
table as an in-memory HDF5 image (one of the HDF5 reader's steps, *plan what to carry*).

:func:`plan_extras` decides from metadata only, at open, which datasets the image will hold
(at most ``EXTRAS_LIMIT`` bytes of stored data) and names those it cannot (links, datasets
beyond the budget); :func:`extras_image` builds the image when the container asks for it.
``Hdf5Writer.write_extras`` copies it back.
"""
from __future__ import annotations

import io

EXTRAS_LIMIT = 64 << 20  # bytes of other datasets carried in the extras image


def plan_extras(file, own_group, skip: set[str]) -> tuple[set[str], list[str]]:
    """(paths of the datasets the image will hold, lines naming what it cannot hold).

    `skip`: paths the table's writer restores itself (its own members, columns left out on
    purpose) and the table dataset."""
    import h5py

    copy: set[str] = set()
    skipped: list[str] = []
    budget = EXTRAS_LIMIT

    def walk(group) -> None:
        nonlocal budget
        for name in group:
            path = f"{group.name.rstrip('/')}/{name}"
            if path in skip:
                continue
            link = group.get(name, getlink=True)
            if not isinstance(link, h5py.HardLink):
                skipped.append(f"{path} (a link)")
                continue
            obj = group[name]
            if isinstance(obj, h5py.Group):
                walk(obj)
                continue
            size = obj.id.get_storage_size()
            if size > budget:
                skipped.append(f"{path} ({size} bytes, beyond the {EXTRAS_LIMIT >> 20} MiB "
                               "carried beside the jets)")
                continue
            budget -= size
            copy.add(path)

    walk(file)
    return copy, skipped


def extras_image(file, own_group, plan: set[str], skip: set[str]) -> tuple[bytes | None, list[str]]:
    """(the image of every planned dataset and every attribute of the file outside `skip`, or
    None when there is nothing; the objects h5py could not copy). The table group's ``units``
    attribute is the writer's to set."""
    import h5py

    bio = io.BytesIO()
    wrote = False
    failed: list[str] = []
    with h5py.File(bio, "w", track_order=True) as out:
        def copy_attrs(src, dst) -> None:
            nonlocal wrote
            for k in src.attrs:
                if k == "units" and src.name == own_group.name:
                    continue
                try:
                    dst.attrs[k] = src.attrs[k]
                    wrote = True
                except Exception:  # noqa: BLE001 - an attribute h5py cannot copy
                    failed.append(f"{src.name} attribute {k}")

        def walk(group, dst) -> None:
            nonlocal wrote
            copy_attrs(group, dst)
            for name in group:
                path = f"{group.name.rstrip('/')}/{name}"
                if path in skip or not isinstance(group.get(name, getlink=True), h5py.HardLink):
                    continue
                obj = group[name]
                if isinstance(obj, h5py.Group):
                    walk(obj, dst[name] if name in dst else dst.create_group(name, track_order=True))
                elif path in plan:
                    try:
                        group.copy(obj, dst, name)
                        wrote = True
                    except Exception:  # noqa: BLE001
                        failed.append(path)

        walk(file, out)
    return (bio.getvalue() if wrote else None), failed
