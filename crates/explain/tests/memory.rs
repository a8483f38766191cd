//! `explain` keeps its documented memory bound (docs/explaining.md, "Large, damaged and hostile input"):
//! under 1 GiB besides the weights for one image, however large the photo. Its own test binary,
//! so that the peak measured is that of the one child it starts.

use std::path::Path;
use std::process::Command;

/// Peak resident memory of `explain` run with `args` in `cwd`, in MiB, after checking it
/// succeeded.
fn peak_mib(args: &[&str], cwd: &Path) -> f64 {
    // Reaped by wait4 below, which also gives its peak memory.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(env!("CARGO_BIN_EXE_explain"))
        .args(args)
        .current_dir(cwd)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid out-parameter, and the pid is our own unwaited child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "explain failed: {status}"
    );
    usage.ru_maxrss as f64 / 1024.0 // kilobytes on Linux
}

#[test]
fn a_48_megapixel_photo_is_explained_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let network =
        model::CifarResNetConfig::default().init::<burn_flex::Flex>(3, 10, &Default::default());
    {
        use burn_store::{BurnToPyTorchAdapter, ModuleSnapshot, SafetensorsStore};
        let path = dir.path().join("resnet20.safetensors");
        let mut store = SafetensorsStore::from_file(path).with_to_adapter(BurnToPyTorchAdapter);
        network.save_into(&mut store).unwrap();
    }
    // A phone photo's size: 8000 × 6000.
    let photo = image::RgbImage::from_fn(8000, 6000, |x, y| {
        image::Rgb([(x / 32) as u8, (y / 24) as u8, ((x + y) / 64) as u8])
    });
    photo.save(dir.path().join("phone.jpg")).unwrap();
    drop(photo);
    let args = [
        "--arch",
        "resnet20",
        "--weights",
        "resnet20.safetensors",
        "--image",
        "phone.jpg",
        "--save-raw",
    ];
    let peak = peak_mib(&args, dir.path());
    eprintln!("explain on an 8000 × 6000 JPEG: peak {peak:.0} MiB");
    assert!(
        peak < 1024.0,
        "peak memory {peak:.0} MiB, over the 1 GiB bound"
    );
    let figure = image::open(
        dir.path()
            .join("explained/resnet20/000_phone/superimposed.jpg"),
    );
    let figure = figure.unwrap();
    assert!(figure.width().max(figure.height()) <= 2048);
}
