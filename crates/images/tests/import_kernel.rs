//! `import-kernel`: bzImages of every codec and plain ELF kernels become kernel images
//! with the ELF form and the PVH fact recorded once; junk is refused by name.

use crate::support;

use banger_images::Manifest;
use banger_images::kernel_import::{KernelImportOptions, import_kernel};

#[test]
fn bzimages_and_elf_kernels_import_with_their_pvh_fact() {
    let root = tempfile::tempdir().unwrap();
    let agent = support::static_busybox();
    let elf = support::fake_vmlinux(true, 256 << 10);
    type Compress = fn(&[u8]) -> Vec<u8>;
    let codecs: [(&str, Compress); 3] = [
        ("lz4", support::lz4_legacy),
        ("gzip", support::gzip),
        ("xz", support::xz),
    ];
    for (codec, compress) in codecs {
        let file = root.path().join(format!("vmlinuz-{codec}"));
        std::fs::write(&file, support::bzimage(&compress(&elf), elf.len(), 27)).unwrap();
        let out = root.path().join(format!("images/k-{codec}"));
        let mut opts = KernelImportOptions::new(file.clone(), out.clone(), agent.clone());
        opts.image_name = format!("k-{codec}");
        let image = import_kernel(&opts).unwrap();
        assert!(image.has_pvh, "{codec}");
        assert_eq!(std::fs::read(&image.kernel_path).unwrap(), elf, "{codec}");
        assert_eq!(
            std::fs::read(image.bzimage_path.as_ref().unwrap()).unwrap(),
            std::fs::read(&file).unwrap()
        );
        let m = Manifest::load(&out).unwrap();
        assert_eq!(m.kernel_codec, codec);
        assert_eq!(m.init.as_deref(), Some("initramfs"));
        assert!(std::fs::metadata(&image.initrd_path).unwrap().len() > 0);
    }

    // A plain ELF without the PVH note: recorded as such, no bzImage.
    let plain = support::fake_vmlinux(false, 64 << 10);
    let file = root.path().join("vmlinux");
    std::fs::write(&file, &plain).unwrap();
    let out = root.path().join("images/plain");
    let image = import_kernel(&KernelImportOptions::new(file, out, agent.clone())).unwrap();
    assert!(!image.has_pvh);
    assert_eq!(image.bzimage_path, None);

    // Junk is refused, naming the file; nothing is left behind.
    let junk = root.path().join("junk");
    std::fs::write(&junk, b"definitely not a kernel, just some bytes of text").unwrap();
    let out = root.path().join("images/junk");
    let err = import_kernel(&KernelImportOptions::new(junk.clone(), out.clone(), agent))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("junk") && err.contains("neither an ELF"),
        "{err}"
    );
    assert!(!out.exists());
    let leftovers: Vec<_> = std::fs::read_dir(root.path().join("images"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
