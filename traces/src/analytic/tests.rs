//! Tests of the analytic generator.

use super::*;
use crate::occupancy::sm_needed;
use crate::op::{KernelClass, OpKind};

const PRESETS: [&str; 3] = ["v100", "a100", "h100"];
const KINDS: [WorkKind; 2] = [WorkKind::Inference, WorkKind::Training];
const FRAMEWORKS: [Framework; 2] = [Framework::Modern, Framework::OrionArtifact];

fn kernels(t: &Trace) -> impl Iterator<Item = &crate::op::OpRecord> {
    t.ops.iter().filter(|o| o.kind.is_kernel())
}

fn kernel_ns(t: &Trace) -> u64 {
    kernels(t).map(|o| o.duration_ns).sum()
}

fn dev(name: &str) -> DeviceSpec {
    DeviceSpec::preset(name).unwrap()
}

/// A rough standalone latency: the host issues ops after their gaps, the GPU runs them in
/// order after the launch latency, syncs wait for the GPU.
fn timeline_ns(trace: &Trace, d: &DeviceSpec) -> f64 {
    let (mut host, mut gpu) = (0.0f64, 0.0f64);
    for op in &trace.ops {
        host += op.host_gap() as f64;
        if op.kind == OpKind::Sync {
            host = host.max(gpu);
        } else if op.kind.uses_gpu() {
            let start = (host + d.launch_latency_ns as f64).max(gpu + d.kernel_gap_ns as f64);
            gpu = start + op.duration_ns as f64;
        }
    }
    host.max(gpu)
}

#[test]
fn every_record_is_complete_and_consistent() {
    for p in PRESETS {
        let d = dev(p);
        for fw in FRAMEWORKS {
            for kind in KINDS {
                for m in Model::ALL {
                    let t = generate_with(m, kind, m.default_batch(kind), &d, fw);
                    for (i, o) in t.ops.iter().enumerate() {
                        let at = format!("{} on {p} op {i} `{}`", t.meta.name, o.name);
                        assert!(o.validate().is_ok(), "{at}: {:?}", o.validate());
                        assert!(o.host_gap_ns.is_some(), "{at}: no host gap");
                        if !o.kind.is_kernel() {
                            continue;
                        }
                        let blocks = o.blocks().unwrap();
                        let bps = o.blocks_per_sm.unwrap();
                        assert!(bps >= 1, "{at}");
                        assert_eq!(o.sm_needed, sm_needed(blocks, bps), "{at}");
                        assert!(o.block.is_some() && o.registers_per_thread.is_some());
                        assert!(o.shared_mem_per_block.is_some());
                        let (flops, bytes) = (o.flops.unwrap(), o.bytes.unwrap());
                        let (sm, dram) = (o.sm_throughput_pct.unwrap(), o.dram_throughput_pct.unwrap());
                        assert!(bytes > 0.0 && flops >= 0.0, "{at}");
                        assert!((0.0..=100.0).contains(&sm) && (0.0..=100.0).contains(&dram), "{at}");
                        assert!(o.duration_ns >= d.min_kernel_ns, "{at}");
                        let class = KernelClass::classify(Some(flops / bytes), d.roofline_knee(), Some(sm), Some(dram));
                        assert_eq!(o.class, class, "{at}");
                        assert!(!o.name.is_empty());
                    }
                }
            }
        }
    }
}

#[test]
fn metadata_labels_the_trace_analytic() {
    let d = dev("h100");
    let t = generate(Model::ResNet50, WorkKind::Inference, 4, &d);
    assert_eq!(t.meta.name, "resnet50-inference-b4");
    assert_eq!(t.meta.model.as_deref(), Some("resnet50"));
    assert_eq!(t.meta.mode, Some(WorkKind::Inference));
    assert_eq!(t.meta.batch_size, Some(4));
    assert_eq!(t.meta.device.as_deref(), Some("h100"));
    assert_eq!(t.meta.source, TraceSource::Analytic);
    assert_eq!(t.meta.update_start, None);
    assert_eq!(t.meta.extra["generator"], GENERATOR);
    assert!(t.meta.extra["assumptions"].contains("not measured"));
    assert_eq!(t.meta.extra["framework"], "pytorch2-defaults");
    let t = generate(Model::Bert, WorkKind::Training, 8, &d);
    assert_eq!(t.meta.name, "bert-training-b8");
    assert!(t.meta.update_start.is_some());
}

#[test]
fn requests_and_iterations_have_the_copy_and_sync_structure() {
    for p in PRESETS {
        let d = dev(p);
        for fw in FRAMEWORKS {
            for kind in KINDS {
                for m in Model::ALL {
                    let b = m.default_batch(kind);
                    let t = generate_with(m, kind, b, &d, fw);
                    let n = t.ops.len();
                    let name = &t.meta.name;
                    assert_eq!(t.ops[0].kind, OpKind::CopyH2D, "{name}");
                    assert_eq!(t.ops[n - 1].kind, OpKind::Sync, "{name}");
                    assert_eq!(t.ops[n - 1].duration_ns, 0, "{name}");
                    assert_eq!(t.ops[n - 2].kind, OpKind::CopyD2H, "{name}");
                    for o in t.ops.iter().filter(|o| !o.kind.is_kernel() && o.kind != OpKind::Sync) {
                        let bytes = o.copy_bytes.unwrap();
                        assert!(o.duration_ns >= kernels::COPY_OVERHEAD_NS as u64, "{name}");
                        assert!(bytes > 0 && o.sm_needed == 0, "{name}");
                    }
                    // Copies and syncs come only at the start and the end, except the
                    // Transformer-XL adaptive softmax's nonzero() read-backs.
                    let first_kernel = t.ops.iter().position(|o| o.kind.is_kernel()).unwrap();
                    assert!(t.ops[..first_kernel].iter().all(|o| o.kind == OpKind::CopyH2D));
                    let mid_syncs = t.ops[..n - 1].iter().filter(|o| o.kind == OpKind::Sync).count();
                    let expect = if m == Model::Transformer { 4 } else { 0 };
                    assert_eq!(mid_syncs, expect, "{name}");
                    let input = t.ops[0].copy_bytes.unwrap();
                    match m {
                        Model::ResNet50 | Model::ResNet101 | Model::MobileNetV2 => {
                            assert_eq!(input, b as u64 * 3 * 224 * 224 * 4, "{name}")
                        }
                        Model::Bert => assert_eq!(input, b as u64 * 384 * 8, "{name}"),
                        Model::Transformer => assert_eq!(input, b as u64 * 192 * 8, "{name}"),
                    }
                    match kind {
                        WorkKind::Inference => {
                            assert_eq!(t.meta.update_start, None);
                            assert!(t.ops[n - 2].copy_bytes.unwrap() >= 4);
                        }
                        WorkKind::Training => {
                            // Inputs and labels in, loss.item() out.
                            assert!(t.count_kind(OpKind::CopyH2D) >= 2, "{name}");
                            assert_eq!(t.ops[n - 2].copy_bytes, Some(4), "{name}");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn training_update_start_points_at_the_optimizer() {
    for p in PRESETS {
        let d = dev(p);
        for m in Model::ALL {
            let b = m.default_batch(WorkKind::Training);
            let t = generate(m, WorkKind::Training, b, &d);
            let u = t.meta.update_start.expect("training traces mark the update");
            let n = t.ops.len();
            // Modern: the foreach optimizer, a handful of multi_tensor_apply launches.
            let opt = &t.ops[u..n - 2];
            assert!(opt.iter().all(|o| o.kind.is_kernel() && o.name.contains("multi_tensor_apply_kernel")));
            assert!((4..=120).contains(&opt.len()), "{}: {} optimizer kernels", t.meta.name, opt.len());
            assert!(!t.ops[..u].iter().any(|o| o.name.contains("multi_tensor_apply")));
            // The optimizer touches every parameter: its bytes cover the model's size.
            let bytes: f64 = opt.iter().map(|o| o.bytes.unwrap()).sum();
            assert!(bytes > 4.0 * 2e6, "{}", t.meta.name);

            // Orion's artifact: a per-parameter loop starting right after the backward pass.
            let t = generate_with(m, WorkKind::Training, b, &d, Framework::OrionArtifact);
            let u = t.meta.update_start.unwrap();
            let n = t.ops.len();
            assert!(t.ops[u].kind.is_kernel());
            assert!(t.ops[u].name.contains("vectorized_elementwise_kernel"), "{}", t.ops[u].name);
            assert!(n - 2 - u >= 150, "{}", t.meta.name);
        }
    }
}

/// Kernel-count ranges per model and mode (default batches, V100, no layout transforms).
/// Orion's published counts (V100): inference ResNet50 175, MobileNetV2 152, ResNet101 345,
/// BERT 572, Transformer-XL 459; training ResNet50 946, MobileNetV2 890, ResNet101 1847,
/// BERT 4777, Transformer-XL 4354.
fn count_range(m: Model, kind: WorkKind, fw: Framework) -> (usize, usize) {
    match (kind, fw, m) {
        (WorkKind::Inference, _, Model::ResNet50) => (170, 180),
        (WorkKind::Inference, _, Model::MobileNetV2) => (148, 156),
        (WorkKind::Inference, _, Model::ResNet101) => (338, 352),
        (WorkKind::Inference, _, Model::Bert) => (480, 720),
        (WorkKind::Inference, _, Model::Transformer) => (400, 700),
        (WorkKind::Training, Framework::Modern, Model::ResNet50) => (420, 560),
        (WorkKind::Training, Framework::Modern, Model::MobileNetV2) => (380, 520),
        (WorkKind::Training, Framework::Modern, Model::ResNet101) => (820, 1100),
        (WorkKind::Training, Framework::Modern, Model::Bert) => (1500, 2400),
        (WorkKind::Training, Framework::Modern, Model::Transformer) => (1200, 2000),
        (WorkKind::Training, Framework::OrionArtifact, Model::ResNet50) => (900, 990),
        (WorkKind::Training, Framework::OrionArtifact, Model::MobileNetV2) => (850, 935),
        (WorkKind::Training, Framework::OrionArtifact, Model::ResNet101) => (1760, 1940),
        (WorkKind::Training, Framework::OrionArtifact, Model::Bert) => (3300, 5500),
        (WorkKind::Training, Framework::OrionArtifact, Model::Transformer) => (3000, 5000),
    }
}

#[test]
fn kernel_counts_are_in_the_documented_ranges() {
    let v100 = dev("v100");
    for fw in FRAMEWORKS {
        for kind in KINDS {
            for m in Model::ALL {
                let t = generate_with(m, kind, m.default_batch(kind), &v100, fw);
                let (lo, hi) = count_range(m, kind, fw);
                let n = t.kernel_count();
                assert!((lo..=hi).contains(&n), "{} ({fw:?}): {n} kernels, expected {lo}..={hi}", t.meta.name);
            }
        }
    }
    // Tensor-core devices add cuDNN layout transforms around convolutions.
    let h100 = dev("h100");
    for kind in KINDS {
        for m in [Model::ResNet50, Model::MobileNetV2, Model::ResNet101] {
            let t = generate(m, kind, m.default_batch(kind), &h100);
            let v = generate(m, kind, m.default_batch(kind), &v100);
            assert!(t.kernel_count() > v.kernel_count());
            assert!(kernels(&t).any(|o| o.name.contains("nchwToNhwcKernel")));
            assert!(!kernels(&v).any(|o| o.name.contains("nchwToNhwcKernel")));
        }
    }
}

#[test]
fn resnet50_inference_on_h100_is_launch_bound_at_about_5ms() {
    let d = dev("h100");
    let t = generate(Model::ResNet50, WorkKind::Inference, 4, &d);
    let n = t.kernel_count();
    assert!((200..=260).contains(&n), "{n} kernels");
    let gaps = t.summed_host_gap_ns() as f64;
    let gpu = t.summed_gpu_ns() as f64;
    let (lower, upper) = (gaps.max(gpu), gaps + gpu);
    assert!(lower <= 5.5e6 && upper >= 4.5e6, "latency in [{lower}, {upper}] ns");
    // Launch-bound: the kernels add up to well below the host time.
    assert!(kernel_ns(&t) as f64 <= 0.4 * gaps);
    let est = timeline_ns(&t, &d);
    assert!((4.0e6..=6.0e6).contains(&est), "timeline estimate {est} ns");
}

#[test]
fn resnet50_inference_on_v100_matches_orions_profile() {
    // Orion: 175 rows, 6.5 ms summed, median 12.5 us, SM usage 1..=392.
    let d = dev("v100");
    let t = generate(Model::ResNet50, WorkKind::Inference, 4, &d);
    let sum = kernel_ns(&t) as f64;
    assert!((4.0e6..=10.0e6).contains(&sum), "summed {sum} ns");
    assert!((6.5e6 / 1.5..=6.5e6 * 1.5).contains(&sum));
    let mut d_ns: Vec<u64> = kernels(&t).map(|o| o.duration_ns).collect();
    d_ns.sort_unstable();
    let median = d_ns[d_ns.len() / 2];
    assert!((6_000..=25_000).contains(&median), "median {median} ns");
    assert!(t.max_sm_needed() <= 800);
    let t = generate(Model::MobileNetV2, WorkKind::Inference, 4, &d);
    let sum = kernel_ns(&t) as f64;
    assert!((2.26e6 / 2.0..=2.26e6 * 2.0).contains(&sum), "MobileNetV2 summed {sum} ns");
}

#[test]
fn orion_artifact_training_counts_match_orions_profiles() {
    let d = dev("v100");
    for (m, orion) in [(Model::ResNet50, 946), (Model::MobileNetV2, 890), (Model::ResNet101, 1847)] {
        let t = generate_with(m, WorkKind::Training, m.default_batch(WorkKind::Training), &d, Framework::OrionArtifact);
        let n = t.kernel_count() as i64;
        assert!((n - orion).abs() <= 10, "{}: {n} vs Orion's {orion}", t.meta.name);
    }
}

#[test]
fn doubling_the_batch_increases_the_kernel_time() {
    for p in PRESETS {
        let d = dev(p);
        for kind in KINDS {
            for m in Model::ALL {
                let b = m.default_batch(kind);
                let t1 = generate(m, kind, b, &d);
                let t2 = generate(m, kind, 2 * b, &d);
                assert!(kernel_ns(&t2) > kernel_ns(&t1), "{} on {p}", t1.meta.name);
                assert!(t2.ops[0].copy_bytes > t1.ops[0].copy_bytes);
            }
        }
    }
}

#[test]
fn h100_is_faster_than_v100() {
    let (h, v) = (dev("h100"), dev("v100"));
    let a = dev("a100");
    for fw in FRAMEWORKS {
        for kind in KINDS {
            for m in Model::ALL {
                let b = m.default_batch(kind);
                let th = kernel_ns(&generate_with(m, kind, b, &h, fw));
                let ta = kernel_ns(&generate_with(m, kind, b, &a, fw));
                let tv = kernel_ns(&generate_with(m, kind, b, &v, fw));
                assert!(th < ta && ta < tv, "{m} {kind}: h100 {th} a100 {ta} v100 {tv}");
            }
        }
    }
}

#[test]
fn any_batch_works_and_generation_is_deterministic_and_fast() {
    let d = dev("a100");
    for kind in KINDS {
        for m in Model::ALL {
            for b in [0, 1, 3, 17, 64] {
                let t = generate(m, kind, b, &d);
                assert_eq!(t.meta.batch_size, Some(b.max(1)));
                assert!(t.ops.iter().all(|o| o.validate().is_ok()));
            }
            let b = m.default_batch(kind);
            let start = std::time::Instant::now();
            let t1 = generate(m, kind, b, &d);
            let elapsed = start.elapsed();
            // Well under 10 ms in optimised builds; generous for unoptimised test builds.
            assert!(elapsed.as_millis() < 100, "{}: {elapsed:?}", t1.meta.name);
            assert_eq!(t1, generate(m, kind, b, &d));
        }
    }
}

#[test]
fn kernels_are_named_and_classed_like_the_real_ones() {
    let h = dev("h100");
    let v = dev("v100");
    let t = generate(Model::ResNet50, WorkKind::Training, 32, &h);
    let names: Vec<&str> = kernels(&t).map(|o| o.name.as_str()).collect();
    for part in [
        "sm90_xmma_fprop_implicit_gemm_tf32",
        "sm90_xmma_dgrad_implicit_gemm_tf32",
        "sm90_xmma_wgrad_implicit_gemm_tf32",
        "nchwToNhwcKernel",
        "bn_fw_tr_1C11_kernel_NCHW",
        "bn_bw_1C11_kernel",
        "threshold_kernel_impl",
        "max_pool_forward_nchw",
        "softmax_warp_forward<float, float, float, 10, true", // log-softmax of the loss
        "nll_loss_forward_reduce_cuda_kernel_2d",
        "multi_tensor_apply_kernel",
    ] {
        assert!(names.iter().any(|n| n.contains(part)), "no `{part}` kernel");
    }
    let t = generate(Model::ResNet50, WorkKind::Inference, 4, &v);
    assert!(kernels(&t).any(|o| o.name.contains("volta_scudnn")));
    assert!(kernels(&t).any(|o| o.name.contains("bn_fw_inf_1C11_kernel_NCHW")));
    // Depthwise convolutions are PyTorch's kernels and not compute-bound.
    let t = generate(Model::MobileNetV2, WorkKind::Inference, 4, &h);
    let dw: Vec<_> = kernels(&t).filter(|o| o.name.contains("conv_depthwise2d_forward")).collect();
    assert_eq!(dw.len(), 17);
    assert!(dw.iter().all(|o| o.class != KernelClass::Compute));
    // Large GEMMs are compute-bound; large elementwise kernels memory-bound; tiny ones neither.
    let t = generate(Model::Bert, WorkKind::Training, 8, &v);
    let big_gemm = kernels(&t).max_by_key(|o| o.flops.unwrap() as u64).unwrap();
    assert_eq!(big_gemm.class, KernelClass::Compute, "{}", big_gemm.name);
    assert!(big_gemm.sm_throughput_pct.unwrap() >= 60.0);
    let big_ew = kernels(&t)
        .filter(|o| o.name.contains("vectorized_elementwise_kernel"))
        .max_by_key(|o| o.bytes.unwrap() as u64)
        .unwrap();
    assert_eq!(big_ew.class, KernelClass::Memory, "{}", big_ew.name);
    assert!(big_ew.dram_throughput_pct.unwrap() >= 70.0);
    let tiny = kernels(&t).find(|o| o.name.contains("CUDAFunctorOnSelf_add<float>") && o.bytes.unwrap() < 1e5);
    if let Some(tiny) = tiny {
        assert_eq!(tiny.class, KernelClass::Unknown);
    }
    // Backward ops pay the autograd engine's (smaller) host cost.
    let t = generate(Model::ResNet50, WorkKind::Training, 32, &v);
    let mut fwd = kernels(&t).filter(|o| o.name.contains("volta_scudnn") && o.name.contains("relu"));
    assert_eq!(fwd.nth(1).unwrap().host_gap_ns, Some(v.host.conv_op_ns));
    let wgrad = kernels(&t).find(|o| o.name.contains("stridedB_splitK")).unwrap();
    let bw = (v.host.conv_op_ns as f64 * v.host.backward_factor).round() as u64;
    // The data gradient precedes the weight gradient in the same call: a launch cost.
    assert!(wgrad.host_gap_ns.unwrap() < bw);
    let first_bw = t.ops.iter().position(|o| o.name.contains("stridedB_splitK")).unwrap();
    let conv_bw_start = t.ops[..first_bw].iter().rposition(|o| o.host_gap_ns == Some(bw));
    assert!(conv_bw_start.is_some());
}

#[test]
#[ignore]
fn report() {
    for fw in [Framework::Modern, Framework::OrionArtifact] {
        for d in ["h100", "a100", "v100"] {
            let d = dev(d);
            for kind in [WorkKind::Inference, WorkKind::Training] {
                for m in Model::ALL {
                    let b = m.default_batch(kind);
                    let t0 = std::time::Instant::now();
                    let t = generate_with(m, kind, b, &d, fw);
                    let el = t0.elapsed();
                    let k: Vec<_> = t.ops.iter().filter(|o| o.kind.is_kernel()).collect();
                    let mut durs: Vec<u64> = k.iter().map(|o| o.duration_ns).collect();
                    durs.sort();
                    let (c, me, u) = t.class_counts();
                    println!(
                        "{:<6} {:<5} {:<32} kernels {:5} ops {:5} sum_k {:9.3} ms gaps {:8.3} ms tl {:8.3} ms med {:6.1} us max {:7.1} us maxsm {:5} C/M/U {}/{}/{} gen {:?}",
                        fw.as_str().split('-').next().unwrap(),
                        d.name,
                        t.meta.name,
                        k.len(),
                        t.ops.len(),
                        durs.iter().sum::<u64>() as f64 / 1e6,
                        t.summed_host_gap_ns() as f64 / 1e6,
                        timeline_ns(&t, &d) / 1e6,
                        durs[durs.len() / 2] as f64 / 1e3,
                        *durs.last().unwrap() as f64 / 1e3,
                        t.max_sm_needed(),
                        c,
                        me,
                        u,
                        el
                    );
                }
            }
        }
    }
    let _ = KernelClass::Compute;
}

fn category(name: &str) -> &'static str {
    let n = name;
    if n.contains("xmma_fprop") || n.contains("scudnn") && n.contains("relu") || n.contains("depthwise2d_forward") {
        "conv"
    } else if n.contains("dgrad")
        || n.contains("wgrad")
        || n.contains("stridedB")
        || n.contains("depthwise2d_backward")
        || n.contains("grad_weight")
        || n.contains("_nt") && n.contains("sgemm")
    {
        "conv_bw"
    } else if n.contains("sgemm") || n.contains("xmma_gemm") || n.contains("gemv") || n.contains("splitK") {
        "gemm"
    } else if n.contains("bn_") {
        "bn"
    } else if n.contains("Nhwc") || n.contains("Nchw") {
        "transform"
    } else if n.contains("multi_tensor") {
        "optim"
    } else if n.contains("elementwise") {
        "elementwise"
    } else {
        "other"
    }
}

#[test]
#[ignore]
fn breakdown() {
    for (d, m, kind) in [
        ("v100", Model::ResNet50, WorkKind::Inference),
        ("v100", Model::MobileNetV2, WorkKind::Inference),
        ("h100", Model::ResNet50, WorkKind::Inference),
        ("v100", Model::Bert, WorkKind::Inference),
        ("v100", Model::ResNet50, WorkKind::Training),
        ("v100", Model::MobileNetV2, WorkKind::Training),
        ("h100", Model::Transformer, WorkKind::Training),
    ] {
        let d = dev(d);
        let t = generate(m, kind, m.default_batch(kind), &d);
        let mut cats: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
        for o in t.ops.iter().filter(|o| o.kind.is_kernel()) {
            let e = cats.entry(category(&o.name)).or_default();
            e.0 += 1;
            e.1 += o.duration_ns;
        }
        println!("== {} on {}", t.meta.name, d.name);
        for (c, (n, ns)) in &cats {
            println!("  {c:<12} {n:5} {:9.3} ms", *ns as f64 / 1e6);
        }
        let mut k: Vec<_> = t.ops.iter().filter(|o| o.kind.is_kernel()).collect();
        k.sort_by_key(|o| std::cmp::Reverse(o.duration_ns));
        for o in k.iter().take(8) {
            println!(
                "  {:8.1} us grid {} block {} bps {:?} sm {} sm% {:?} dram% {:?} {:?} flops {:.2e} bytes {:.2e} {}",
                o.duration_ns as f64 / 1e3,
                o.grid.unwrap(),
                o.block.unwrap(),
                o.blocks_per_sm,
                o.sm_needed,
                o.sm_throughput_pct,
                o.dram_throughput_pct,
                o.class,
                o.flops.unwrap(),
                o.bytes.unwrap(),
                &o.name[..o.name.len().min(90)]
            );
        }
    }
}
