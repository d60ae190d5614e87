//! torchvision MobileNetV2 (width multiplier 1.0), 224x224 RGB input, 1000 classes.
//!
//! A 3x3/2 convolution to 32 channels, then inverted residual blocks given by (expansion t,
//! channels c, repeats n, stride s) = (1,16,1,1), (6,24,2,2), (6,32,3,2), (6,64,4,2),
//! (6,96,3,1), (6,160,3,2), (6,320,1,1): a 1x1 expansion (when t > 1), a 3x3 depthwise
//! convolution, a 1x1 linear projection, each with batch norm, ReLU6 after the first two, and
//! a residual add when the stride is 1 and the channels match. Then a 1x1 convolution to 1280
//! channels, global average pooling, dropout 0.2 and a 1000-way linear layer.
//!
//! Depthwise convolutions run PyTorch's own `conv_depthwise2d` kernels (fp32), which are
//! memory- and latency-bound, not GEMMs.

use super::layers::{Conv, Net, Op, Pw};
use super::resnet::{CLASSES, IMAGE, classifier_io, conv_bn};

/// (expansion, output channels, repeats, stride) of the inverted residual stages.
pub(crate) const SETTINGS: [(u64, u64, u64, u64); 7] =
    [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)];
/// Channels of the last convolution.
pub(crate) const LAST_CHANNELS: u64 = 1280;

/// MobileNetV2 at batch `n`.
pub(crate) fn mobilenet_v2(n: u64, training: bool) -> Net {
    let mut net = Net::default();
    classifier_io(&mut net, n, training);
    let stem = Conv { input_grad: false, ..Conv::new(n, 3, IMAGE, 32, 3, 2) };
    conv_bn(&mut net, stem, Some(Pw::Relu6));
    let mut c_in = 32;
    let mut hw = stem.p();
    for &(t, c, repeats, s) in &SETTINGS {
        for i in 0..repeats {
            let stride = if i == 0 { s } else { 1 };
            let residual = stride == 1 && c_in == c;
            if residual {
                net.fork(n * c_in * hw * hw, 2);
            }
            let hidden = c_in * t;
            if t != 1 {
                conv_bn(&mut net, Conv::new(n, c_in, hw, hidden, 1, 1), Some(Pw::Relu6));
            }
            let dw = Conv::depthwise(n, hidden, hw, 3, stride);
            conv_bn(&mut net, dw, Some(Pw::Relu6));
            let hw2 = dw.p();
            conv_bn(&mut net, Conv::new(n, hidden, hw2, c, 1, 1), None);
            if residual {
                net.pw(Pw::Add, n * c * hw2 * hw2);
            }
            c_in = c;
            hw = hw2;
        }
    }
    conv_bn(&mut net, Conv::new(n, c_in, hw, LAST_CHANNELS, 1, 1), Some(Pw::Relu6));
    net.push(Op::Mean { in_elems: n * LAST_CHANNELS * hw * hw, out_elems: n * LAST_CHANNELS });
    net.push(Op::Dropout { elems: n * LAST_CHANNELS });
    net.linear(n, LAST_CHANNELS, CLASSES, true);
    net
}
