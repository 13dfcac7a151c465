import numpy as np
import pytest
import torch
from fmzoo.core import InputSpecError
from fmzoo.remotesensing.data.eopatch import EOPatchMultiLabelCrops, load_eopatch, multilabel_vector
from fmzoo.remotesensing.data.eurosat import CLASSES, EuroSATRGB, decode_rgb, load_eurosat_rgb
from fmzoo.remotesensing.data.geotiff import read_geotiff, write_geotiff


def test_eurosat_5class_subset_counts(rs_root):
    x, y = load_eurosat_rgb("train", rs_root)
    assert x.shape == (10400, 3, 64, 64) and x.dtype == np.uint8
    assert np.bincount(y).tolist() == [2400, 2000, 1600, 2400, 2000]  # 80% of 3000/2500/2000/3000/2500
    xt, yt = load_eurosat_rgb("test", rs_root)
    assert len(yt) == 2600
    xs, ys = load_eurosat_rgb("train", rs_root, limit=500, seed=1)
    assert len(ys) == 500 and set(ys.tolist()) == set(range(len(CLASSES)))
    sample = EuroSATRGB("test", rs_root, limit=50)[0]
    assert sample["image"].shape == (3, 64, 64) and sample["bands"] == ["B04", "B03", "B02"]


def test_corrupt_image_is_a_clear_error(tmp_path, rs_root):
    good = sorted((rs_root / "remote_sensing/eurosat_rgb_5class/dataset/val/River").glob("*.jpg"))[0]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(good.read_bytes()[:200])
    with pytest.raises(InputSpecError, match="corrupt or truncated"):
        decode_rgb(bad)


def test_eopatch_and_multilabels(rs_root):
    p = load_eopatch(rs_root)
    assert p["image"].shape == (5, 13, 101, 100)
    assert 0 < p["image"].min() and p["image"].max() < 1  # reflectance
    assert set(np.unique(p["lulc"]).tolist()) == {0, 1, 2, 3, 4, 8}
    lab = multilabel_vector(np.array([[2, 2, 3, 0]]), min_fraction=0.2)
    assert lab.tolist() == [0, 1, 1, 0, 0]
    ds = EOPatchMultiLabelCrops(crop=48, length=64, root=rs_root)
    labs = torch.stack([ds[i][1] for i in range(64)])
    assert ds[0][0].shape == (13, 48, 48)
    assert torch.equal(ds[3][0], ds[3][0])  # deterministic per (seed, epoch, index)
    # real cross-scene variety: not every crop has the same label set
    assert len({tuple(r.tolist()) for r in labs}) > 1


def test_geotiff_roundtrip_and_errors(tmp_path, rs_root):
    p = load_eopatch(rs_root)
    path = write_geotiff(tmp_path / "s2.tif", p["image"][0], p["bands"], p["crs"], p["bounds"])
    s = read_geotiff(path)
    assert s["bands"] == p["bands"] and s["crs"] == "EPSG:32633"
    assert torch.allclose(s["image"], torch.from_numpy(p["image"][0]))
    # a file without band descriptions needs bands=...
    import rasterio

    with rasterio.open(tmp_path / "plain.tif", "w", driver="GTiff", height=8, width=8, count=2, dtype="float32") as dst:
        dst.write(np.zeros((2, 8, 8), dtype=np.float32))
    with pytest.raises(InputSpecError, match="without descriptions"):
        read_geotiff(tmp_path / "plain.tif")
    assert read_geotiff(tmp_path / "plain.tif", bands=["B04", "B08"])["bands"] == ["B04", "B08"]
    trunc = tmp_path / "trunc.tif"
    trunc.write_bytes(path.read_bytes()[:300])
    with pytest.raises(InputSpecError, match="not a readable GeoTIFF"):
        read_geotiff(trunc)
