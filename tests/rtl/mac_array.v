// mac_array: LANES signed multiply-accumulate lanes sharing one a-operand.
//
// Synthesizable Verilog-2001. Each lane holds an ACC_BITS-wide signed accumulator.
// On a rising clock edge:
//   rst        : every accumulator and overflow flag <= 0
//   else load  : acc[l] <= bias[l], ovf[l] <= 0
//   else en    : acc[l] <= acc[l] + a * b[l], the sum computed exactly, then
//                  sat = 1: clamped to [-2**(ACC_BITS-1), 2**(ACC_BITS-1) - 1]
//                  sat = 0: wrapped (the low ACC_BITS bits, two's complement)
//                ovf[l] <= ovf[l] | (the exact sum did not fit ACC_BITS)
// This is intsim's Datapath(a=intBITS, b=intBITS, acc_bits=ACC_BITS, k_chunk=1,
// overflow="saturate" | "wrap") with the overflow flag of GemmResult.overflow.
//
// Lane l's operands are b[l*BITS +: BITS], bias[l*ACC_BITS +: ACC_BITS] and its
// result acc[l*ACC_BITS +: ACC_BITS]. Requires 2 <= BITS and 2 <= ACC_BITS.
//
// Deliberately broken variants, for testing the checkers (never define in real use):
//   BROKEN_NO_SAT      the saturation logic is missing: sat = 1 wraps
//   BROKEN_B_UNSIGNED  operand b is zero-extended (read as unsigned)

`timescale 1ns/1ps

module mac_array #(
    parameter integer BITS     = 8,
    parameter integer ACC_BITS = 32,
    parameter integer LANES    = 4
) (
    input  wire                      clk,
    input  wire                      rst,
    input  wire                      load,
    input  wire                      en,
    input  wire                      sat,
    input  wire [BITS-1:0]           a,
    input  wire [LANES*BITS-1:0]     b,
    input  wire [LANES*ACC_BITS-1:0] bias,
    output wire [LANES*ACC_BITS-1:0] acc,
    output wire [LANES-1:0]          ovf
);
    // product width (one extra bit for the zero-extended broken variant) and sum width
    localparam integer PW = 2 * BITS + 1;
    localparam integer SW = ((ACC_BITS > PW) ? ACC_BITS : PW) + 1;
    localparam integer TOP = SW - ACC_BITS + 1;  // sum bits that must all equal the sign

`ifdef BROKEN_NO_SAT
    wire sat_en = 1'b0;
`else
    wire sat_en = sat;
`endif

    genvar l;
    generate
        for (l = 0; l < LANES; l = l + 1) begin : lane
            reg  [ACC_BITS-1:0] acc_r;
            reg                 ovf_r;
            wire signed [BITS-1:0] a_s = a;
`ifdef BROKEN_B_UNSIGNED
            wire signed [BITS:0]   b_s = {1'b0, b[l*BITS +: BITS]};
`else
            wire signed [BITS:0]   b_s = {b[l*BITS + BITS - 1], b[l*BITS +: BITS]};
`endif
            wire signed [PW-1:0]   prod = a_s * b_s;
            wire signed [SW-1:0]   sum  = $signed(acc_r) + prod;
            wire [TOP-1:0]         top  = sum[SW-1:ACC_BITS-1];
            wire                   fits = (top == {TOP{1'b0}}) || (top == {TOP{1'b1}});
            wire [ACC_BITS-1:0]    maxv = {1'b0, {(ACC_BITS-1){1'b1}}};
            wire [ACC_BITS-1:0]    minv = {1'b1, {(ACC_BITS-1){1'b0}}};
            wire [ACC_BITS-1:0]    next = (fits || !sat_en) ? sum[ACC_BITS-1:0] : (sum[SW-1] ? minv : maxv);

            always @(posedge clk) begin
                if (rst) begin
                    acc_r <= {ACC_BITS{1'b0}};
                    ovf_r <= 1'b0;
                end else if (load) begin
                    acc_r <= bias[l*ACC_BITS +: ACC_BITS];
                    ovf_r <= 1'b0;
                end else if (en) begin
                    acc_r <= next;
                    ovf_r <= ovf_r | ~fits;
                end
            end

            assign acc[l*ACC_BITS +: ACC_BITS] = acc_r;
            assign ovf[l] = ovf_r;
        end
    endgenerate
endmodule
