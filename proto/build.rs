//! Compiles every `.proto` under `supervision/` with protox (no system protoc) and writes the
//! descriptor set that server reflection serves.

use std::{
    env,
    path::{Path, PathBuf},
};

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    collect_protos(&root.join("supervision"), &mut files)?;
    files.sort();
    // The directory too, so that a newly added .proto file (also in a new package directory) reruns
    // this script: Cargo scans a watched directory for any change.
    println!("cargo:rerun-if-changed={}", root.join("supervision").display());
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }

    let fds = protox::Compiler::new([root])?
        .include_imports(true)
        .include_source_info(true)
        .open_files(files.iter().map(|f| f.strip_prefix(root).expect("under root")))?
        .file_descriptor_set();

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("descriptor.bin"), fds.encode_to_vec())?;

    // Every RPC gets a default implementation answering UNIMPLEMENTED, so a service implements its
    // RPCs one issue at a time; docs/api-status.md lists which are real.
    tonic_prost_build::configure()
        .generate_default_stubs(true)
        .build_client(env::var_os("CARGO_FEATURE_CLIENT").is_some())
        .build_server(env::var_os("CARGO_FEATURE_SERVER").is_some())
        .compile_fds(fds)?;
    Ok(())
}

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
