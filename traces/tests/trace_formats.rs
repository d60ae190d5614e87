//! Reading and writing trace files through `orion_traces::format`.

mod common;

use common::{Scratch, data};
use orion_traces::format::{TraceFormat, read_trace, read_trace_str, write_trace, write_trace_as};
use orion_traces::{Dim3, KernelClass, Location, OpKind, TraceSource, WorkKind};

#[test]
fn reads_orion_kernel_file_without_extension() {
    let t = read_trace(&data().join("model_kernels/resnet50_4_fwd")).unwrap();
    assert_eq!(t.meta.name, "resnet50_4_fwd");
    assert_eq!(t.meta.source, TraceSource::File);
    assert_eq!(t.ops.len(), 7);
    assert_eq!(t.kernel_count(), 7);
    assert_eq!(t.ops[0].name, "Conv");
    assert_eq!(t.ops[0].sm_needed, 98);
    assert_eq!(t.ops[0].duration_ns, 100_480);
    assert_eq!(t.ops[0].class, KernelClass::Compute);
    assert_eq!(t.ops[1].class, KernelClass::Memory);
}

#[test]
fn reads_orion_kernel_file_with_launch_shapes() {
    let t = read_trace(&data().join("model_kernels/resnet50_32_fb1")).unwrap();
    assert_eq!(t.ops.len(), 5);
    assert_eq!(t.ops[0].grid, None);
    assert_eq!(t.ops[1].block, Some(Dim3::linear(512)));
    assert_eq!(t.ops[1].grid, Some(Dim3::linear(1024)));
    assert_eq!(t.ops[4].duration_ns, 50_000);
}

#[test]
fn reads_native_csv_and_json() {
    let csv = read_trace(&data().join("traces/bert_train.csv")).unwrap();
    assert_eq!(csv.meta.name, "bert-training-b8");
    assert_eq!(csv.meta.mode, Some(WorkKind::Training));
    assert_eq!(csv.meta.batch_size, Some(8));
    assert_eq!(csv.meta.source, TraceSource::Measured);
    assert_eq!(csv.meta.update_start, Some(3));
    assert_eq!(csv.meta.extra.get("gpu").map(String::as_str), Some("NVIDIA H100 SXM5 80GB"));
    assert_eq!(csv.ops.len(), 5);
    assert_eq!(csv.ops[0].kind, OpKind::CopyH2D);
    assert_eq!(csv.ops[0].copy_bytes, Some(16384));
    assert_eq!(csv.ops[1].name, "void gemm<float, 128>");
    assert_eq!(csv.ops[1].grid, Some(Dim3::linear(264)));
    assert_eq!(csv.ops[4].kind, OpKind::Sync);

    let json = read_trace(&data().join("traces/resnet50_inf.json")).unwrap();
    assert_eq!(json.meta.name, "resnet50-inference-b4");
    assert_eq!(json.meta.source, TraceSource::Analytic);
    assert_eq!(json.ops.len(), 3);
    assert_eq!(json.ops[2].host_gap_ns, Some(7000));
}

#[test]
fn write_then_read_is_identical_in_both_native_forms() {
    let s = Scratch::new("roundtrip");
    for src in ["traces/bert_train.csv", "traces/resnet50_inf.json", "model_kernels/resnet50_32_fb1"] {
        let t = read_trace(&data().join(src)).unwrap();
        for ext in ["csv", "json", "trace"] {
            let out = s.dir.join(format!("out.{ext}"));
            write_trace(&out, &t).unwrap();
            assert_eq!(read_trace(&out).unwrap(), t, "{src} as .{ext}");
        }
    }
}

#[test]
fn json_is_detected_by_content_without_extension() {
    let s = Scratch::new("jsoncontent");
    let t = read_trace(&data().join("traces/resnet50_inf.json")).unwrap();
    let out = s.dir.join("noext");
    write_trace_as(&out, &t, TraceFormat::NativeJson).unwrap();
    assert_eq!(read_trace(&out).unwrap(), t);
    assert_eq!(TraceFormat::for_path(&out), TraceFormat::NativeCsv);
    assert_eq!(TraceFormat::for_path(&s.dir.join("x.JSON")), TraceFormat::NativeJson);
}

#[test]
fn orion_output_keeps_only_kernels() {
    let s = Scratch::new("orionout");
    let t = read_trace(&data().join("traces/bert_train.csv")).unwrap();
    let out = s.dir.join("bert_8_fb1");
    write_trace_as(&out, &t, TraceFormat::OrionCsv).unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.starts_with("Name,Profile,Memory_footprint,SM_usage,Duration\n"));
    assert!(text.contains("void gemm<float; 128>,1,0,132,250000\n"), "{text}");
    let back = read_trace(&out).unwrap();
    assert_eq!(back.meta.name, "bert_8_fb1");
    assert_eq!(back.ops.len(), t.kernel_count());
    for (a, b) in back.ops.iter().zip(t.ops.iter().filter(|o| o.kind.is_kernel())) {
        assert_eq!((a.duration_ns, a.sm_needed, a.class), (b.duration_ns, b.sm_needed, b.class));
    }
}

#[test]
fn malformed_orion_row_names_file_line_and_field() {
    let s = Scratch::new("badrow");
    let p = s.write(
        "model_kernels/x.csv",
        "Name,Profile,Memory_footprint,SM_usage,Duration\nConv,1,0,98,100480\nBN,0,0,64,1\n\
         BN,0,0,64,1\nBN,0,0,64,1\nBN,0,0,64,1\nBN,0,0,64,abc\n",
    );
    let msg = read_trace(&p).unwrap_err().to_string();
    assert_eq!(msg, format!("{}, line 7, field `Duration`: `abc` is not a number of nanoseconds", p.display()));
    assert!(msg.contains("model_kernels/x.csv"));
}

#[test]
fn unrecognised_file_says_which_headers_are_accepted() {
    let s = Scratch::new("unknown");
    let p = s.write("weird.txt", "# produced by hand\ntime,value\n1,2\n");
    let msg = read_trace(&p).unwrap_err().to_string();
    assert!(msg.contains("weird.txt, line 2"), "{msg}");
    assert!(msg.contains("Name,Profile,Memory_footprint,SM_usage,Duration"), "{msg}");
    assert!(msg.contains("kind,name,duration_ns,sm_needed,class"), "{msg}");
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let p = data().join("no_such_trace.csv");
    let msg = read_trace(&p).unwrap_err().to_string();
    assert!(msg.contains("no_such_trace.csv"), "{msg}");
}

#[test]
fn read_trace_str_uses_origin_for_names_and_errors() {
    let t = read_trace_str(
        "Name,Profile,Memory_footprint,SM_usage,Duration\nk,1,0,1,10\n",
        Location::file("dir/mobilenetv2_4_fwd"),
    )
    .unwrap();
    assert_eq!(t.meta.name, "mobilenetv2_4_fwd");
    let err = read_trace_str("{\"format\": \"orion-rs-trace/1\"}", Location::file("<stdin>")).unwrap_err().to_string();
    assert!(err.starts_with("<stdin>, line 1: missing field `meta`"), "{err}");
}

/// The JSON form spells op kinds as trace files do everywhere else (`copy_h2d`), so that a
/// JSON trace written by hand or by another tool reads back.
#[test]
fn json_op_kinds_use_the_trace_file_names() {
    for kind in OpKind::ALL {
        assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{}\"", kind.as_str()));
    }
}
