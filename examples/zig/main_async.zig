//! Broker 入口：预热客户端对象池，监听端口，用 io_uring 异步接受连接。

const std = @import("std");
const config = @import("config.zig");
const ClientPool = @import("client_pool.zig").ClientPool;

const log = std.log.scoped(.broker);

// accept 完成事件的 user_data
const ACCEPT_USER_DATA: u64 = 1;

/// 创建客户端对象池并按配置预热。
pub fn startClientPool(allocator: std.mem.Allocator) !ClientPool {
    var client_pool = ClientPool.init(allocator);
    errdefer client_pool.deinit();

    const started_ms = std.time.milliTimestamp();
    try client_pool.preheat(config.MAX_CLIENTS_POOL);
    std.log.info("客户端对象池已预热 {d} 个对象，用时 {d} ms", .{ config.MAX_CLIENTS_POOL, std.time.milliTimestamp() - started_ms });
    return client_pool;
}

/// 待转发的消息按 FORWARD_BATCH_SIZE 分批，每批之后让出事件循环；返回批数。
pub fn forwardBatchCount(pending: usize) usize {
    return std.math.divCeil(usize, pending, config.FORWARD_BATCH_SIZE) catch unreachable;
}

pub fn main() !void {
    var gpa: std.heap.DebugAllocator(.{}) = .init;
    defer _ = gpa.deinit();
    const allocator = gpa.allocator();

    var client_pool = try startClientPool(allocator);
    defer client_pool.deinit();

    // io_uring 要求队列深度为 2 的幂
    const ring_entries = std.math.floorPowerOfTwo(u16, config.IO_ENTRIES);
    var ring = try std.os.linux.IoUring.init(ring_entries, 0);
    defer ring.deinit();

    const address = try std.net.Address.parseIp4(config.LISTEN_ADDRESS, config.LISTEN_PORT);
    var server = try address.listen(.{ .reuse_address = true, .kernel_backlog = config.KERNEL_BACKLOG });
    defer server.deinit();
    log.info("监听 {f}，io_uring 队列深度 {d}", .{ address, ring_entries });

    var active_connections: usize = 0;
    while (true) {
        _ = try ring.accept(ACCEPT_USER_DATA, server.stream.handle, null, null, 0);
        _ = try ring.submit_and_wait(1);
        const cqe = try ring.copy_cqe();
        if (cqe.err() != .SUCCESS) {
            log.warn("accept 失败：{s}", .{@tagName(cqe.err())});
            continue;
        }
        const fd: std.posix.fd_t = cqe.res;
        if (active_connections >= config.MAX_CONNECTIONS) {
            log.warn("连接数已达上限 {d}，拒绝新连接", .{config.MAX_CONNECTIONS});
            std.posix.close(fd);
            continue;
        }

        const client = try client_pool.acquire();
        client.fd = fd;
        client.keep_alive_s = config.DEFAULT_KEEP_ALIVE_S;
        active_connections += 1;

        // MQTT 会话处理不在本示例中：连接建立后立即关闭并归还对象
        std.posix.close(client.fd);
        client_pool.release(client);
        active_connections -= 1;
    }
}
