//! The MLIR pass pipeline, as one flat list of named stages, run with melior.
//!
//! `TRITONITE_DUMP_MLIR=1` prints the module before the first stage and after each one (to stderr).

use std::cell::RefCell;
use std::sync::Once;

use melior::dialect::DialectRegistry;
use melior::ir::operation::OperationLike;
use melior::ir::Module;
use melior::pass::PassManager;
use melior::utility::{
    parse_pass_pipeline, register_all_dialects, register_all_llvm_translations, register_all_passes,
};
use melior::Context;

use crate::error::LowerError;
use crate::Target;

/// The stages from a `gpu.module` of vector/scf/arith/llvm ops to PTX, in order.
pub fn stages(target: &Target) -> Vec<(&'static str, String)> {
    vec![
        ("attach-target", format!("builtin.module(nvvm-attach-target{{chip={} features=+ptx{} O=3}})", target.chip, target.ptx_version)),
        ("to-nvvm", "builtin.module(gpu.module(convert-vector-to-llvm,convert-scf-to-cf,convert-gpu-to-nvvm,reconcile-unrealized-casts))".to_string()),
        ("to-ptx", "builtin.module(gpu-module-to-binary{format=isa})".to_string()),
    ]
}

static REGISTER_PASSES: Once = Once::new();

fn context() -> Context {
    // Registering passes twice in one process double-frees inside MLIR.
    REGISTER_PASSES.call_once(register_all_passes);
    let registry = DialectRegistry::new();
    register_all_dialects(&registry);
    let context = Context::new();
    context.append_dialect_registry(&registry);
    context.load_all_available_dialects();
    register_all_llvm_translations(&context);
    context
}

/// Parses `mlir`, runs every stage and returns the PTX text.
pub fn mlir_to_ptx(kernel: &str, mlir: &str, target: &Target) -> Result<String, LowerError> {
    let dump = std::env::var_os("TRITONITE_DUMP_MLIR").is_some_and(|v| v != "0");
    let context = context();
    let diagnostics = RefCell::new(Vec::<String>::new());
    let handler = context.attach_diagnostic_handler(|d| {
        diagnostics.borrow_mut().push(format!("{}: {}", d.location(), d));
        true
    });
    let fail =
        |stage| LowerError::Mlir { kernel: kernel.to_string(), stage, diagnostics: diagnostics.borrow().join("\n") };
    if dump {
        eprintln!("// ----- {kernel}: emitted -----\n{mlir}");
    }
    let mut module = Module::parse(&context, mlir).ok_or_else(|| fail("parse"))?;
    if !module.as_operation().verify() {
        return Err(fail("verify"));
    }
    for (name, pipeline) in stages(target) {
        let pm = PassManager::new(&context);
        pm.enable_verifier(true);
        parse_pass_pipeline(pm.as_operation_pass_manager(), &pipeline).map_err(|_| fail(name))?;
        pm.run(&mut module).map_err(|_| fail(name))?;
        if dump && name != "to-ptx" {
            eprintln!("// ----- {kernel}: after {name} -----\n{}", module.as_operation());
        }
    }
    let text = module.as_operation().to_string();
    context.detach_diagnostic_handler(handler);
    extract_assembly(&text).ok_or_else(|| LowerError::Mlir {
        kernel: kernel.to_string(),
        stage: "to-ptx",
        diagnostics: "no `assembly` string in the gpu.binary".into(),
    })
}

/// The PTX of the first `#gpu.object` in a printed module; MLIR escapes bytes as `\XX` (hex).
fn extract_assembly(module_text: &str) -> Option<String> {
    let start = module_text.find("assembly = \"")? + "assembly = \"".len();
    let bytes = &module_text.as_bytes()[start..];
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return String::from_utf8(out).ok(),
            b'\\' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn assembly_unescapes_hex() {
        let t = r#"gpu.binary @k [#gpu.object<#nvvm.target, assembly = "a\09b\0A\22q\22\5C">]"#;
        assert_eq!(super::extract_assembly(t).unwrap(), "a\tb\n\"q\"\\");
    }
}
