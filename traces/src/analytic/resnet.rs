//! torchvision ResNet-50 / ResNet-101 (v1.5: the stride is on the 3x3 convolution of the
//! bottleneck), 224x224 RGB input, 1000 classes.
//!
//! Stem: 7x7/2 convolution to 64 channels, batch norm, ReLU, 3x3/2 max pool. Then four stages
//! of bottleneck blocks (1x1 reduce, 3x3, 1x1 expand by 4, each followed by batch norm, ReLU
//! after the first two and after the residual add), widths 64/128/256/512, strides 1/2/2/2;
//! the first block of each stage has a 1x1 projection (convolution + batch norm) on the
//! identity path. Global average pooling (a `mean`) and a 1000-way linear layer.

use super::layers::{Conv, Net, Op, Pw, Transfer};

/// Blocks per stage of ResNet-50.
pub(crate) const RESNET50_BLOCKS: [u64; 4] = [3, 4, 6, 3];
/// Blocks per stage of ResNet-101.
pub(crate) const RESNET101_BLOCKS: [u64; 4] = [3, 4, 23, 3];
/// Input image side.
pub(crate) const IMAGE: u64 = 224;
/// Classes.
pub(crate) const CLASSES: u64 = 1000;

/// Convolution, batch norm and (optionally) ReLU.
pub(crate) fn conv_bn(net: &mut Net, c: Conv, relu: Option<Pw>) {
    net.push(Op::Conv(c));
    let hw = c.p() * c.q();
    net.push(Op::BatchNorm { n: c.n, c: c.k, hw });
    if let Some(f) = relu {
        net.pw(f, c.out_elems());
    }
}

/// Image-classifier inputs and outputs: images (and labels) in, logits out; cross-entropy.
pub(crate) fn classifier_io(net: &mut Net, n: u64, training: bool) {
    net.inputs.push(Transfer { label: "images", bytes: n * 3 * IMAGE * IMAGE * 4 });
    if training {
        net.inputs.push(Transfer { label: "labels", bytes: n * 8 });
        net.loss.push(Op::CrossEntropy { rows: n, classes: CLASSES });
    } else {
        net.outputs.push(Transfer { label: "logits", bytes: n * CLASSES * 4 });
    }
}

/// A ResNet with bottleneck `blocks` per stage at batch `n`.
pub(crate) fn resnet(blocks: [u64; 4], n: u64, training: bool) -> Net {
    let mut net = Net::default();
    classifier_io(&mut net, n, training);
    let stem = Conv { input_grad: false, ..Conv::new(n, 3, IMAGE, 64, 7, 2) };
    conv_bn(&mut net, stem, Some(Pw::Relu));
    net.push(Op::MaxPool { n, c: 64, hw: stem.p(), k: 3, stride: 2 });
    let mut c_in = 64;
    let mut hw = stem.p().div_ceil(2);
    for (stage, &count) in blocks.iter().enumerate() {
        let width = 64 << stage;
        let out_c = width * 4;
        for b in 0..count {
            let stride = if stage > 0 && b == 0 { 2 } else { 1 };
            // The block input feeds the main path and the identity/projection.
            net.fork(n * c_in * hw * hw, 2);
            conv_bn(&mut net, Conv::new(n, c_in, hw, width, 1, 1), Some(Pw::Relu));
            let c2 = Conv::new(n, width, hw, width, 3, stride);
            conv_bn(&mut net, c2, Some(Pw::Relu));
            let hw2 = c2.p();
            conv_bn(&mut net, Conv::new(n, width, hw2, out_c, 1, 1), None);
            if b == 0 {
                conv_bn(&mut net, Conv::new(n, c_in, hw, out_c, 1, stride), None);
            }
            let out = n * out_c * hw2 * hw2;
            net.pw(Pw::Add, out);
            net.pw(Pw::Relu, out);
            c_in = out_c;
            hw = hw2;
        }
    }
    net.push(Op::Mean { in_elems: n * c_in * hw * hw, out_elems: n * c_in });
    net.linear(n, c_in, CLASSES, true);
    net
}
