"""`segment train dataset ID` installs the model under the dataset's short name, also when given an id."""
from chimerax.medseg.chimerax_ui.cmd_train import _default_name


def test_default_install_name_follows_the_dataset_folder(tmp_path, monkeypatch):
    from chimerax.medseg.datasets.phantom import write_dataset
    write_dataset(tmp_path / "raw", 41, 1, name="Blob")
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    assert _default_name("41") == "blob"
    assert _default_name("Dataset041_Blob") == "blob"
    assert _default_name(str(tmp_path / "raw" / "Dataset041_Blob")) == "blob"
