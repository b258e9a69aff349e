//! [`FlashAttentionBackend`]: the burn backend extension and its implementations.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::DType;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::ops::FloatTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};
use burn_fusion::{Fusion, FusionBackend};

use super::launch;
use crate::fusion_op::{Body, outputs as outputs_of, register};
use std::sync::Arc;

/// A backend that runs FlashAttention-2. Tensors are `[.., seq, head_dim]` (any leading
/// dimensions), `q`, `k`, `v` of one shape; `lse` is `[.., seq]` f32.
pub trait FlashAttentionBackend: Backend {
    /// `(o, lse)`: the attention output and the natural-log logsumexp of each score row.
    fn flash_attention_forward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        causal: bool,
        scale: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// `(dq, dk, dv)` for upstream gradient `d_o`, from the forward's inputs and outputs.
    #[allow(clippy::too_many_arguments)]
    fn flash_attention_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        o: FloatTensor<Self>,
        lse: FloatTensor<Self>,
        d_o: FloatTensor<Self>,
        causal: bool,
        scale: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> FlashAttentionBackend
    for CubeBackend<R, F, I, BT>
{
    fn flash_attention_forward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        causal: bool,
        scale: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        launch::forward(q, k, v, causal, scale)
    }

    fn flash_attention_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        o: FloatTensor<Self>,
        lse: FloatTensor<Self>,
        d_o: FloatTensor<Self>,
        causal: bool,
        scale: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        launch::backward(q, k, v, o, lse, d_o, causal, scale)
    }
}

impl<B: FusionBackend + FlashAttentionBackend> FlashAttentionBackend for Fusion<B> {
    fn flash_attention_forward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        causal: bool,
        scale: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let outputs = vec![
            (q.shape.clone(), q.dtype),
            (super::row_shape(&q.shape), DType::F32),
        ];
        let body: Body<B> = Arc::new(move |desc, handles| {
            let (inputs, [o_ir, lse_ir]) = desc.as_fixed::<3, 2>();
            let [q, k, v] = inputs.each_ref().map(|t| handles.get_float_tensor::<B>(t));
            let (o, lse) = B::flash_attention_forward(q, k, v, causal, scale);
            handles.register_float_tensor::<B>(&o_ir.id, o);
            handles.register_float_tensor::<B>(&lse_ir.id, lse);
        });
        let [o, lse] = outputs_of(register::<B>(
            "flash_attention_forward",
            vec![q, k, v],
            outputs,
            body,
        ));
        (o, lse)
    }

    fn flash_attention_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        o: FloatTensor<Self>,
        lse: FloatTensor<Self>,
        d_o: FloatTensor<Self>,
        causal: bool,
        scale: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let like_q = (q.shape.clone(), q.dtype);
        let outputs = vec![like_q.clone(), like_q.clone(), like_q];
        let body: Body<B> = Arc::new(move |desc, handles| {
            let (inputs, outputs) = desc.as_fixed::<6, 3>();
            let [q, k, v, o, lse, d_o] =
                inputs.each_ref().map(|t| handles.get_float_tensor::<B>(t));
            let grads = B::flash_attention_backward(q, k, v, o, lse, d_o, causal, scale);
            for (out, t) in outputs.iter().zip([grads.0, grads.1, grads.2]) {
                handles.register_float_tensor::<B>(&out.id, t);
            }
        });
        let inputs = vec![q, k, v, o, lse, d_o];
        let [dq, dk, dv] = outputs_of(register::<B>(
            "flash_attention_backward",
            inputs,
            outputs,
            body,
        ));
        (dq, dk, dv)
    }
}

/// Backward step of the autodiff graph: the state is everything the kernel needs.
#[derive(Debug)]
struct FlashBackward {
    causal: bool,
    scale: f32,
}

type FlashState<B> = [FloatTensor<B>; 5]; // q, k, v, o, lse

impl<B: FlashAttentionBackend> Backward<B, 3> for FlashBackward {
    type State = FlashState<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_q, node_k, node_v] = ops.parents;
        let d_o = grads.consume::<B>(&ops.node);
        let [q, k, v, o, lse] = ops.state;
        let (dq, dk, dv) =
            B::flash_attention_backward(q, k, v, o, lse, d_o, self.causal, self.scale);
        for (node, grad) in [(node_q, dq), (node_k, dk), (node_v, dv)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

impl<B: FlashAttentionBackend, C: CheckpointStrategy> FlashAttentionBackend for Autodiff<B, C> {
    fn flash_attention_forward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        causal: bool,
        scale: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let backward = FlashBackward { causal, scale };
        let parents = [q.node.clone(), k.node.clone(), v.node.clone()];
        let (qp, kp, vp) = (q.primitive, k.primitive, v.primitive);
        match backward.prepare::<C>(parents).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (o, lse) =
                    B::flash_attention_forward(qp.clone(), kp.clone(), vp.clone(), causal, scale);
                let state = [qp, kp, vp, o.clone(), lse.clone()];
                // lse is an output for callers, not a differentiable one (as in the course).
                (prep.finish(state, o), Self::from_inner(lse))
            }
            OpsKind::UnTracked(prep) => {
                let (o, lse) = B::flash_attention_forward(qp, kp, vp, causal, scale);
                (prep.finish(o), Self::from_inner(lse))
            }
        }
    }

    fn flash_attention_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        o: FloatTensor<Self>,
        lse: FloatTensor<Self>,
        d_o: FloatTensor<Self>,
        causal: bool,
        scale: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        // Called directly (not through a graph): a constant computation on the inner backend.
        let [q, k, v, o, lse, d_o] = [q, k, v, o, lse, d_o].map(Self::inner);
        let (dq, dk, dv) = B::flash_attention_backward(q, k, v, o, lse, d_o, causal, scale);
        (
            Self::from_inner(dq),
            Self::from_inner(dk),
            Self::from_inner(dv),
        )
    }
}
